"""The checks on media as localization teams receive it: a rate that changes, dropped frames, a phone
video turned by its display matrix. Real ffmpeg on small generated clips."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from prefect_lipsync.media import synth
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.quality.analysis import analyze, parse_filter_log
from prefect_lipsync.quality.checks import check_output
from prefect_lipsync.quality.frames import sample_frames
from prefect_lipsync.quality.models import QualityThresholds
from prefect_lipsync.quality.preflight import preflight
from prefect_lipsync.quality.streams import probe_streams

MUXER_NOTICE = (
    "[info] frame=    1 fps=0.0 q=-0.0 size=N/A time=00:00:00.08 bitrate=N/A speed=76x    "
    "[null @ 0x5608] [error] Application provided invalid, non monotonically increasing dts to muxer in stream 0: 146 >= 146"
)


def test_the_muxers_timestamp_notices_are_not_decode_errors_real_errors_still_are() -> None:
    log = "\n".join(
        [
            MUXER_NOTICE,
            "[null @ 0x5608] [error] Application provided invalid, non monotonically increasing dts to muxer in stream 0: 150 >= 150",
            "[h264 @ 0x55d0] [error] Invalid NAL unit size (1088 > 511).",
        ]
    )
    assert parse_filter_log(log).errors == ["[h264 @ 0x55d0] [error] Invalid NAL unit size (1088 > 511)."]


@pytest.fixture(scope="module")
def rate_change(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.make_rate_change_clip(tmp_path_factory.mktemp("rate") / "screen.mp4", size=(160, 90))


def test_a_clip_at_24_then_30_fps_decodes_cleanly_though_the_null_muxer_complains(rate_change: Path) -> None:
    null = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "level+info",
            "-i",
            str(rate_change),
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    notices = [line for line in null.stderr.splitlines() if "[error]" in line]
    assert null.returncode == 0 and len(notices) >= 5 and all("monoton" in line for line in notices)
    found = analyze(rate_change, video=True, audio=True)
    assert found.errors == [] and found.decoded_until == pytest.approx(6.0, abs=0.05)
    thresholds = QualityThresholds(preflight_full_decode=True)  # every frame, as the shared analysis does
    report = preflight({"inputs": {"video": rate_change.as_uri()}}, thresholds=thresholds)
    decodes = report.check("source_decodes")
    assert decodes is not None and decodes.status == "pass", decodes


def test_frames_of_a_clip_with_dropped_frames_are_the_ones_on_screen(tmp_path: Path) -> None:
    clip = synth.make_dropped_frames_clip(tmp_path / "phone.mp4", duration=2.0, fps="30", size=(160, 90))
    facts = probe_streams(clip)
    assert facts.clock is not None and facts.clock.count == 51  # 60 frames less 3 of every 20
    size = (160, 90)
    # 0.18 s is in the gap of frames 3-5 (0.1-0.2 s): the screen still shows frame 2 (0.0667 s).
    gap, shown = sample_frames(
        clip, [0.18, 0.07], size=size, fps=facts.fps or 30, clock=facts.clock, gray=False
    )
    assert np.array_equal(gap, shown)
    # Seeking by the nominal rate alone lands on the next frame (0.2 s): another picture.
    [nominal] = sample_frames(clip, [0.18], size=size, fps=facts.fps or 30, gray=False)
    assert not np.array_equal(nominal, shown)


def test_a_turned_phone_video_and_its_upright_output_compare_as_shown(tmp_path: Path) -> None:
    shown = (180, 320)
    source = synth.make_rotated_clip(tmp_path / "phone.mp4", shown=shown, rotation=90, duration=2.0)
    # What a service (and the emulator) hands back: the picture re-encoded upright, no matrix.
    output = tmp_path / "out.mp4"
    run_ffmpeg(
        [
            "-y",
            "-i",
            str(source),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "16",
            "-c:a",
            "aac",
            str(output),
        ]
    )
    src, out = probe_streams(source), probe_streams(output)
    assert (src.width, src.height, src.rotation) == (*shown, 90)
    assert (out.width, out.height, out.rotation) == (*shown, 0)
    face = synth.face_box(*shown)
    payload = {"inputs": {"video": source.as_uri(), "audio": source.as_uri()}}
    report = check_output(
        output, source=source, request_payload=payload, face_box=face, lipsync_expected=False
    )
    geometry, outside = report.check("geometry"), report.check("outside_face_unchanged")
    assert geometry is not None and geometry.status == "pass" and geometry.value == "180x320"
    assert outside is not None and outside.status == "pass", outside
    # The stored picture without its matrix (a tool that dropped it) is caught, and the message says
    # how the source is stored.
    sideways = tmp_path / "sideways.mp4"
    run_ffmpeg(["-y", "-i", str(source), "-c", "copy", "-metadata:s:v:0", "rotate=0", str(sideways)])
    assert probe_streams(sideways).rotation == 0
    wrong = check_output(
        sideways, source=source, request_payload=payload, face_box=face, lipsync_expected=False
    )
    failed = wrong.check("geometry")
    assert failed is not None and failed.status == "fail"
    assert "shows 320x180, the source 180x320 (stored turned by 90 degrees)" in failed.message
