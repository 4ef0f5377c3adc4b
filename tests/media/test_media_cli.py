"""`prefect-lipsync probe`: a table, JSON with exact fps strings, and one stderr line per bad file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from media_testkit import MediaSet, ProcessLog

from prefect_lipsync.cli import main


def test_table_shows_each_file_with_geometry_rate_frames_vfr_and_audio(
    media: MediaSet, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["probe", str(media.videos["30000/1001"]), str(media.vfr), str(media.wav)])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    header, ntsc, vfr, wav = out.splitlines()
    assert header.split() == [
        "FILE",
        "DURATION",
        "S",
        "VIDEO",
        "FRAMES",
        "VFR",
        "SHOWN",
        "AS",
        "TIMECODE",
        "AUDIO",
    ]
    assert ntsc.split() == [
        str(media.videos["30000/1001"]),
        "1.001",
        "h264",
        "160x90@29.97",
        "(30000/1001)",
        "30",
        "no",
        "-",
        "-",
        "aac",
        "48000",
        "Hz",
        "1",
        "ch",
    ]
    assert vfr.split()[1:6] == ["1.980", "h264", "160x90@50", "75", "yes"]
    assert wav.split() == [
        str(media.wav),
        "1.500",
        "-",
        "-",
        "-",
        "-",
        "-",
        "pcm_s16le",
        "44100",
        "Hz",
        "1",
        "ch",
    ]


def test_json_lists_media_info_dumps_with_fps_as_fraction_strings(
    media: MediaSet, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "--json", str(media.videos["30000/1001"]), str(media.m4a)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["path"] for d in data] == [str(media.videos["30000/1001"]), str(media.m4a)]
    assert data[0]["video"]["fps"] == "30000/1001"
    assert data[0]["video"]["frame_count"] == 30
    assert data[1]["video"] is None
    assert data[1]["audio"][0]["channels"] == 2


def test_bad_files_exit_1_with_one_line_each_and_good_files_still_shown(
    media: MediaSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.mp4"
    code = main(["probe", str(missing), str(media.videos["25"]), str(media.text_as_mp4), str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert str(media.videos["25"]) in out
    lines = err.splitlines()
    assert lines == [
        f"error: {missing}: file not found",
        f"error: {media.text_as_mp4}: not a media file ffprobe can read (Invalid data found when processing input)",
        f"error: {tmp_path}: is a directory, not a media file",
    ]


def test_no_cache_flag_probes_again(
    media: MediaSet, process_log: ProcessLog, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", str(media.wav)]) == 0
    assert main(["probe", str(media.wav)]) == 0
    assert len(process_log.runs("ffprobe")) == 1
    assert main(["probe", "--no-cache", str(media.wav)]) == 0
    assert len(process_log.runs("ffprobe")) == 2
    capsys.readouterr()


def test_timeout_option_reaches_ffprobe(media: MediaSet, capsys: pytest.CaptureFixture[str]) -> None:
    # A timeout far too short for any process start: the file is reported, not a traceback.
    assert main(["probe", "--no-cache", "--timeout", "0.000001", str(media.wav)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {media.wav}: ffprobe did not finish within")
    assert "Traceback" not in err


def test_installed_command_prints_no_traceback_for_a_missing_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prefect_lipsync.cli", "probe", str(tmp_path / "gone.wav")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == f"error: {tmp_path / 'gone.wav'}: file not found\n"
