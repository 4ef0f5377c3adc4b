"""`prefect-lipsync run` on media as localization teams have it (issue #25), as a user's shell runs it:
one take cut into two lines, a dub with its own pause, a 5.1 master with a music-and-effects stream;
and a quality rejection printed once, in plain text, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # --import-mode=importlib: tests/tone_meter.py

from infra import seed_prefect_home
from tone_meter import Channels

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.media.probe import probe
from prefect_lipsync.media.synth import face_box, make_master, speak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

CLI = Path(sys.executable).with_name("prefect-lipsync")
SIZE = (320, 180)
ORIGINAL_HZ, ME_HZ = 220, 1500
PAUSE_S = 0.8


def clean_env(home: Path) -> dict[str, str]:
    """A user's shell: no Prefect profile or API URL, no Runware key, a PREFECT_HOME of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("PREFECT_") and not k.startswith("PREFECT_LIPSYNC_"))
        and k not in {"RUNWARE_API_KEY", "RUNWARE_BASE_URL"}
    }
    return {**env, "PREFECT_HOME": str(seed_prefect_home(home)), "COLUMNS": "200"}


def run_cli(tmp_path: Path, manifest: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "run", str(manifest), "--out", str(tmp_path / "out"), "--quality-policy", "fail", *extra],
        env=clean_env(tmp_path / "prefect-home"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=360,
    )


def take_with_a_pause(folder: Path) -> tuple[Path, float, float]:
    """One take of two sentences with a 0.8 s pause between them; (file, where S2 starts, its length)."""
    first = speak("Hola amigos.", folder / "s1.wav", voice="es", speed_wpm=190)
    second = speak("Buenos días a todos.", folder / "s2.wav", voice="es", speed_wpm=190)
    take = folder / "take.wav"
    run_ffmpeg(
        [
            "-y",
            "-i",
            str(first),
            "-i",
            str(second),
            "-filter_complex",
            f"[0:a]apad=pad_dur={PAUSE_S}[a];[a][1:a]concat=n=2:v=0:a=1,aresample=48000",
            str(take),
        ]
    )
    return take, probe(first, cache=None).duration + PAUSE_S, probe(take, cache=None).duration


def write_manifest(folder: Path, lines: list[dict[str, Any]], **extra: Any) -> Path:
    data = {
        "version": 1,
        "name": "promo",
        "video": "master.mp4",
        "speakers": {"host": {"box": list(face_box(*SIZE))}},
        **extra,
        "languages": {"es": {"lines": lines}},
    }
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def test_one_take_in_two_lines_with_its_pause_over_a_51_m_and_e_stream_is_delivered_in_51(
    tmp_path: Path, cache_dir: Path
) -> None:
    make_master(
        tmp_path / "master.mp4", audio=[(ORIGINAL_HZ, "5.1"), (ME_HZ, "5.1")], duration=6.5, size=SIZE
    )
    _, second_at, take_s = take_with_a_pause(tmp_path)
    lines = [
        # The whole take, its pause inside the line; then its second sentence again, cropped.
        {"id": "l1", "start": 0.4, "end": round(0.4 + take_s + 0.2, 2), "audio": "take.wav"},
        {
            "id": "l2",
            "start": 4.4,
            "end": round(4.4 + take_s - second_at + 0.2, 2),
            "audio": "take.wav",
            "audio_start": round(second_at, 2),
            "audio_end": round(take_s, 2),
        },
    ]
    manifest = write_manifest(tmp_path, lines, music_and_effects={"stream": 2})
    done = run_cli(tmp_path, manifest)
    output = done.stdout + done.stderr
    (tmp_path / "run.log").write_text(output)
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "HTTP 500" not in output
    delivered = tmp_path / "out" / "promo" / "promo.es.mp4"
    assert delivered.exists(), output[-3000:]
    report = (tmp_path / "out" / "promo" / "promo.es.mp4.report.json").read_text()
    assert '"name": "speech_in_segments",\n      "status": "pass"' in report

    sound = Channels.of(delivered)
    assert sound.layout == "5.1" and sound.duration == pytest.approx(6.5, abs=0.1)

    # Speech sits between the original dialogue's 220 Hz and the M&E's 1500 Hz: 300-1200 Hz is the dub's.
    def speaks(channel: str, a: float, b: float) -> float:
        return sound.band(channel, 300, 1200, a, b)

    assert speaks("FC", 0.45, 1.2) > 0.01 and speaks("FC", 4.45, 5.0) > 0.01  # the dub in each line
    assert speaks("FC", 3.85, 4.3) < 0.001 and speaks("FC", 6.0, 6.4) < 0.001  # and nowhere else
    assert speaks("FL", 0.45, 1.2) < 0.001  # in the centre only
    # The M&E between the lines and under them; the original dialogue nowhere (under a line the centre
    # holds the dub's own voice, whose harmonics reach 220 Hz: the other channels say it there).
    stretches = [(0.0, 0.35, False), (3.85, 4.3, False), (6.0, 6.4, False), (0.45, 1.2, True)]
    for a, b, under_a_line in stretches:
        assert sound.tone("FL", ME_HZ, a, b) > 0.02 and sound.tone("FC", ME_HZ, a, b) > 0.02
        for channel in (c for c in sound.names if not (under_a_line and c == "FC")):
            assert sound.tone(channel, ORIGINAL_HZ, a, b) < 0.002, (channel, a, b)


def test_a_quality_rejection_prints_its_findings_once_in_plain_text_without_a_traceback(
    tmp_path: Path, cache_dir: Path
) -> None:
    make_master(tmp_path / "master.mp4", audio=[(ORIGINAL_HZ, "stereo")], duration=3.0, size=SIZE)
    speak("Hola a todos, bienvenidos.", tmp_path / "l1.wav", voice="es", speed_wpm=190)
    manifest = write_manifest(tmp_path, [{"id": "l1", "start": 0.4, "end": 2.6, "audio": "l1.wav"}])
    # An emulator whose output plays the audio 300 ms late: av_offset fails.
    with run_emulator(latency=0.1, variation_audio_offsets=(0.3,)) as url:
        done = run_cli(tmp_path, manifest, "--base-url", str(url))
    output = done.stdout + done.stderr
    (tmp_path / "run.log").write_text(output)
    assert done.returncode == 1, output[-3000:]
    assert output.count("av_offset") == 1, output
    assert (
        "finding:  fail av_offset = 0.3 (threshold |offset| <= 40 ms (1 frame)): The output's audio is +300 ms"
        in output
    )
    assert "Traceback" not in output and "QualityRejected" not in output
    assert "**" not in output and "\\" not in output and "`" not in output  # no raw markdown
    assert "The run did not complete: quality checks failed for es (policy fail)" in output
    assert (tmp_path / "out" / "promo" / "quarantine" / "promo.es.mp4").exists()
