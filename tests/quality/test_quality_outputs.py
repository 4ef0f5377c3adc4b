"""Each broken output is caught by the check meant for it, and only by that check."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.media.synth import face_box, mouth_box
from prefect_lipsync.quality import QualityReport, check_output, quarantine

SIZE = (320, 180)
Scenario = Any  # the `scenario` fixture (tests/quality/conftest.py)
Broken = Callable[[str], Path]


def _check(scenario: Scenario, output: Path, **kwargs: object) -> QualityReport:
    return check_output(output, source=scenario.source, request_payload=scenario.payload, **kwargs)  # type: ignore[arg-type]


def test_clean_output_passes_every_check(scenario: Scenario) -> None:
    report = _check(scenario, scenario.clean)
    assert report.verdict == "pass", [c for c in report.checks if c.status != "pass"]
    names = {c.name for c in report.checks}
    assert {
        "container",
        "decode",
        "streams",
        "duration",
        "geometry",
        "frame_rate",
        "audio_level",
        "speech_in_segments",
        "loudness",
        "true_peak",
        "av_offset",
        "black_frames",
        "frozen_frames",
        "content_safety",
    } <= names
    av = report.check("av_offset")
    assert av is not None and isinstance(av.value, float) and abs(av.value) < 0.005


@pytest.mark.parametrize(
    ("fault", "caught_by"),
    [
        ("black_second", {"black_frames"}),
        ("frozen_tail", {"frozen_frames"}),
        ("muted_segment", {"speech_in_segments"}),
        ("audio_delay_200ms", {"av_offset"}),
        ("wrong_size", {"geometry"}),
        ("no_audio", {"streams"}),
        ("truncated", {"decode"}),
        ("not_video", {"container"}),
    ],
)
def test_each_fault_is_caught_by_its_own_check_only(
    scenario: Scenario, broken: Broken, fault: str, caught_by: set[str]
) -> None:
    report = _check(scenario, broken(fault))
    assert report.not_passed() == caught_by, [c.message for c in report.checks if c.status != "pass"]
    assert report.verdict == "fail"


def test_black_second_is_located_in_time(scenario: Scenario, broken: Broken) -> None:
    check = _check(scenario, broken("black_second")).check("black_frames")
    assert check is not None and len(check.at) == 1
    assert check.at[0].start == pytest.approx(1.0, abs=0.05)
    assert check.at[0].end == pytest.approx(2.0, abs=0.1)


def test_freeze_to_end_of_file_is_an_open_range(scenario: Scenario, broken: Broken) -> None:
    check = _check(scenario, broken("frozen_tail")).check("frozen_frames")
    assert check is not None and check.at[0].end is None
    assert check.at[0].start == pytest.approx(3.5, abs=0.1)


def test_audio_delay_is_measured_to_the_millisecond(scenario: Scenario, broken: Broken) -> None:
    check = _check(scenario, broken("audio_delay_200ms")).check("av_offset")
    assert check is not None and check.value == pytest.approx(0.2, abs=0.002)


def test_black_stretch_in_the_source_too_is_not_blamed_on_the_output(
    scenario: Scenario, broken: Broken
) -> None:
    output = broken("black_second")
    # Compare the broken output with itself as the source: the stretch is the source's own.
    report = check_output(output, source=output, request_payload=scenario.payload)
    check = report.check("black_frames")
    assert check is not None and check.status == "pass"


def test_emulator_output_warns_that_the_mouth_did_not_move(scenario: Scenario) -> None:
    report = _check(
        scenario, scenario.clean, face_box=face_box(*SIZE), mouth_box=mouth_box(*SIZE), lipsync_expected=False
    )
    assert report.not_passed() == {"mouth_changed"}
    assert report.verdict == "warn"
    outside = report.check("outside_face_unchanged")
    assert outside is not None and outside.status == "pass"


def test_unmoved_mouth_fails_when_lipsync_was_expected(scenario: Scenario) -> None:
    report = _check(scenario, scenario.clean, face_box=face_box(*SIZE), mouth_box=mouth_box(*SIZE))
    assert report.not_passed() == {"mouth_changed"} and report.verdict == "fail"


def test_moved_mouth_passes_and_a_change_outside_the_face_fails(
    scenario: Scenario, mouth_moved: Callable[[bool], Path]
) -> None:
    moved = mouth_moved(False)
    report = _check(scenario, moved, face_box=face_box(*SIZE), mouth_box=mouth_box(*SIZE))
    assert report.verdict == "pass", [c.message for c in report.checks if c.status != "pass"]
    spoiled = mouth_moved(True)
    report = _check(scenario, spoiled, face_box=face_box(*SIZE), mouth_box=mouth_box(*SIZE))
    assert report.not_passed() == {"outside_face_unchanged"}


def test_flagged_output_is_quarantined_and_the_report_says_why(scenario: Scenario, tmp_path: Path) -> None:
    delivery = tmp_path / "delivery" / "es.mp4"
    delivery.parent.mkdir()
    delivery.write_bytes(scenario.clean.read_bytes())
    payload = {**scenario.payload, "safety": {"checkContent": True, "mode": "full"}}
    report = check_output(delivery, source=scenario.source, request_payload=payload, nsfw_flag=True)
    assert report.not_passed() == {"content_safety"} and report.verdict == "fail"
    assert not delivery.exists()
    assert report.quarantined_to is not None
    moved = Path(report.quarantined_to)
    assert moved.parent == delivery.parent / "quarantine" and moved.is_file()
    why = json.loads(moved.with_name(moved.name + ".quarantine.json").read_text())
    assert "NSFW" in why["reasons"][0]


def test_quarantine_never_overwrites_an_earlier_quarantined_file(tmp_path: Path) -> None:
    report = QualityReport(verdict="fail", output="x", checks=[])
    first = tmp_path / "a.mp4"
    first.write_bytes(b"one")
    moved_first = quarantine(first, report)
    first.write_bytes(b"two")
    moved_second = quarantine(first, report)
    assert moved_first != moved_second
    assert moved_first.read_bytes() == b"one" and moved_second.read_bytes() == b"two"


def test_unflagged_output_of_a_checked_request_passes_safety(scenario: Scenario) -> None:
    payload = {**scenario.payload, "safety": {"checkContent": True}}
    report = check_output(scenario.clean, source=scenario.source, request_payload=payload, nsfw_flag=False)
    assert report.verdict == "pass" and scenario.clean.exists()


def test_asked_for_content_check_without_a_flag_warns(scenario: Scenario) -> None:
    payload = {**scenario.payload, "safety": {"mode": "fast"}}
    report = check_output(scenario.clean, source=scenario.source, request_payload=payload)
    assert report.not_passed() == {"content_safety"} and report.verdict == "warn"


@pytest.mark.slow
def test_cli_prints_json_and_exits_non_zero_on_fail(
    scenario: Scenario, broken: Broken, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "jobs": [{"language": "es", "request": scenario.payload, "warnings": []}],
                "estimated_seconds": 5.0,
                "estimated_cost_usd": 0.5,
            }
        )
    )
    cmd = ["prefect_lipsync.cli", "check", "--source", str(scenario.source), "--plan", str(plan), "--json"]
    ok = subprocess.run(
        [_python(), "-m", *cmd, str(scenario.clean)], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    body = json.loads(ok.stdout)
    assert body["verdict"] == "pass"
    assert {"name", "status", "value", "threshold", "message"} <= set(body["checks"][0])
    delayed = broken("audio_delay_200ms")
    bad = subprocess.run([_python(), "-m", *cmd, str(delayed)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["verdict"] == "fail"
    table = subprocess.run(
        [
            _python(),
            "-m",
            "prefect_lipsync.cli",
            "check",
            str(delayed),
            "--source",
            str(scenario.source),
            "--plan",
            str(plan),
            "--language",
            "es",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 1 and "av_offset" in table.stdout and "fail" in table.stdout


def test_cli_names_a_missing_language_without_a_traceback(scenario: Scenario, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"jobs": [{"language": "es", "request": scenario.payload}]}))
    done = subprocess.run(
        [
            _python(),
            "-m",
            "prefect_lipsync.cli",
            "check",
            str(scenario.clean),
            "--source",
            str(scenario.source),
            "--plan",
            str(plan),
            "--language",
            "fr",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "fr" in done.stderr and "Traceback" not in done.stderr


def _python() -> str:
    import sys

    return sys.executable


def test_frames_kept_from_the_analysis_pass_are_the_frames_a_seek_returns(
    scenario: Scenario, tmp_path: Path
) -> None:
    from fractions import Fraction

    import numpy as np

    from prefect_lipsync.quality.analysis import FrameGrab, analyze
    from prefect_lipsync.quality.frames import sample_frames

    times = (0.3, 1.15, 3.49, 4.9)
    grab = FrameGrab(times=times, fps=Fraction(25), size=SIZE, reference=scenario.source, folder=tmp_path)
    found = analyze(scenario.clean, audio=False, grab=grab)
    sought = sample_frames(scenario.source, times, size=SIZE, fps=Fraction(25))
    assert len(found.frames) == len(found.reference_frames) == len(sought) == len(times)
    for kept, seek in zip(found.reference_frames, sought, strict=True):
        assert np.array_equal(kept, seek)
