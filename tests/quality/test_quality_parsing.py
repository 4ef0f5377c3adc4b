"""The pure parts: filter-log parsing, cross-correlation, SSIM regions, payload reading."""

from __future__ import annotations

import numpy as np
import pytest

from prefect_lipsync.quality.analysis import parse_filter_log, parse_named_volumes
from prefect_lipsync.quality.avsync import measure_offset
from prefect_lipsync.quality.models import QualityReport, QualityThresholds, TimeRange, worst
from prefect_lipsync.quality.payload import planned_segments, resolve_media, safety_mode
from prefect_lipsync.quality.ssim import ssim_inside, ssim_outside

LOG = """\
[Parsed_ebur128_5 @ 0x1] [info] Summary:

  Integrated loudness:
    I:         -70.0 LUFS
  True peak:
    Peak:       -inf dBFS
[blackdetect @ 0x2] [info] black_start:1 black_end:2.04 black_duration:1.04
[freezedetect @ 0x3] [info] lavfi.freezedetect.freeze_start: 3.48
[silencedetect @ 0x4] [info] silence_start: 0.0
[silencedetect @ 0x4] [info] silence_end: 0.31 | silence_duration: 0.31
[silencedetect @ 0x4] [info] silence_start: 4.4
[h264 @ 0x5] [error] Invalid NAL unit size (3487 > 2798).
[info] frame=  125 fps=0.0 q=-0.0 Lsize=N/A time=00:00:05.01 bitrate=N/A speed=92.4x
[Parsed_ebur128_5 @ 0x6] [info] Summary:

  Integrated loudness:
    I:         -22.5 LUFS
  True peak:
    Peak:      -14.5 dBFS
[Parsed_volumedetect_3 @ 0x7] [info] max_volume: -14.5 dB
"""


def test_filter_log_parser_reads_every_filter_and_keeps_the_last_summary() -> None:
    found = parse_filter_log(LOG)
    assert found.black == [TimeRange(start=1.0, end=2.04)]
    assert found.freeze == [TimeRange(start=3.48, end=None)]  # frozen to the end: no freeze_end
    assert found.silence == [TimeRange(start=0.0, end=0.31), TimeRange(start=4.4, end=None)]
    assert found.integrated_lufs == -22.5 and found.true_peak_dbtp == -14.5
    assert found.max_volume_db == -14.5
    assert found.decoded_until == pytest.approx(5.01)
    assert len(found.errors) == 1 and "Invalid NAL" in found.errors[0]


def test_named_volumedetect_reports_are_told_apart() -> None:
    log = (
        "[volumedetect@seg0 @ 0x1] [info] n_samples: 0\n"
        "[volumedetect@seg1 @ 0x2] [info] max_volume: -3.0 dB\n"
        "[volumedetect@seg0 @ 0x3] [info] max_volume: -91.0 dB\n"
    )
    assert parse_named_volumes(log) == {"seg1": -3.0, "seg0": -91.0}


def test_cross_correlation_finds_a_known_delay_in_noise() -> None:
    rng = np.random.default_rng(7)
    reference = rng.standard_normal(16000).astype(np.float32)
    output = np.zeros(16000 * 4, dtype=np.float32)
    start = int(1.0 * 16000) + 320  # planned at 1.0 s, plays 20 ms late
    output[start : start + reference.size] = 0.5 * reference
    output += 0.01 * rng.standard_normal(output.size).astype(np.float32)
    measure = measure_offset(reference, output, planned_start_s=1.0, search_s=0.5)
    assert measure is not None
    assert measure.offset_s == pytest.approx(0.020, abs=1 / 16000)
    assert measure.correlation > 0.9


def test_cross_correlation_gives_up_on_silence() -> None:
    reference = np.ones(16000, dtype=np.float32)
    assert (
        measure_offset(reference, np.zeros(48000, dtype=np.float32), planned_start_s=1.0, search_s=0.5)
        is None
    )


def test_ssim_ignores_the_box_outside_and_looks_only_inside_it() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, size=(90, 160), dtype=np.uint8)
    b = a.copy()
    b[30:60, 60:100] = 255 - b[30:60, 60:100]
    box = (60, 30, 100, 60)
    assert ssim_outside(a, b, box) == pytest.approx(1.0)
    assert ssim_inside(a, b, box) < 0.2
    assert ssim_outside(a, b, (0, 0, 10, 10)) < 0.97


def test_payload_segments_and_whole_track_dub() -> None:
    payload = {
        "inputs": {"video": "file:///v.mp4"},
        "settings": {
            "segments": [
                {
                    "startTime": 1.0,
                    "endTime": 3.0,
                    "audio": "file:///a%20b.wav",
                    "audioStartTime": 0.5,
                    "audioEndTime": 1.5,
                }
            ]
        },
    }
    (seg,) = planned_segments(payload, 10.0)
    assert (seg.start, seg.end, seg.audio_start, seg.audio_length()) == (1.0, 3.0, 0.5, 1.0)
    assert str(resolve_media(seg.audio_ref)) == "/a b.wav"
    whole = planned_segments({"inputs": {"video": "x", "audio": "https://h/a.wav"}}, 7.5)
    assert [(s.start, s.end) for s in whole] == [(0.0, 7.5)]
    assert resolve_media("https://h/a.wav") is None
    assert planned_segments({"speech": {"text": "hola"}}, 5.0) == []


def test_safety_mode_reads_check_content_alone_as_fast() -> None:
    assert safety_mode({"safety": {"checkContent": True}}) == "fast"
    assert safety_mode({"safety": {"mode": "full"}}) == "full"
    assert safety_mode({}) == "none"


def test_verdict_is_the_worst_status() -> None:
    assert worst(["pass", "warn", "pass"]) == "warn"
    assert worst(["warn", "fail"]) == "fail"
    assert QualityReport.from_checks([], output="x", source=None).verdict == "pass"


def test_thresholds_are_one_overridable_model() -> None:
    t = QualityThresholds(av_offset_max_frames=2, silence_min_s=1.0)
    assert t.av_offset_max_frames == 2 and t.loudness_target_lufs == -23.0
    with pytest.raises(ValueError, match="silence_min_s"):
        QualityThresholds(silence_min_s=0)
