"""Pre-flight refuses a job before paying when its inputs are broken."""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path
from typing import Any

from prefect_lipsync.media.synth import make_silence
from prefect_lipsync.quality.preflight import preflight

Scenario = Any  # the `scenario` fixture (tests/quality/conftest.py)


def test_good_job_passes_with_only_the_face_warning_of_a_drawn_card(scenario: Scenario) -> None:
    report = preflight(
        scenario.payload,
        expected_fps=Fraction(25),
        expected_duration=5.0,
        price_per_second=0.1,
        budget_usd=1.0,
    )
    # The Haar detector does not see the drawn face: a warning, never a refusal.
    assert report.not_passed() == {"face_visible"}
    assert report.verdict == "warn"
    budget = report.check("budget")
    assert budget is not None and budget.value == 0.5


def test_silent_segment_audio_is_refused(scenario: Scenario, tmp_path: Path) -> None:
    payload = copy.deepcopy(scenario.payload)
    payload["settings"]["segments"][1]["audio"] = make_silence(tmp_path / "silence.wav", duration=3).as_uri()
    report = preflight(payload)
    assert report.verdict == "fail"
    assert report.not_passed() - {"face_visible"} == {"segment_audio_level"}
    check = report.check("segment_audio_level")
    assert check is not None and "segment 2" in check.message


def test_crop_past_the_end_of_the_audio_is_refused(scenario: Scenario) -> None:
    payload = copy.deepcopy(scenario.payload)
    seg = payload["settings"]["segments"][0]
    seg["audioStartTime"], seg["audioEndTime"] = 30.0, 31.0
    report = preflight(payload)
    assert report.not_passed() - {"face_visible"} == {"segment_audio_level"}


def test_source_that_does_not_decode_is_refused(scenario: Scenario, broken: Any) -> None:
    for fault in ("truncated", "not_video"):
        payload = copy.deepcopy(scenario.payload)
        payload["inputs"]["video"] = broken(fault).as_uri()
        report = preflight(payload)
        assert report.verdict == "fail"
        assert report.not_passed() == {"source_decodes"}, fault


def test_audio_file_that_does_not_decode_is_refused(scenario: Scenario, tmp_path: Path) -> None:
    fake = tmp_path / "line.wav"
    fake.write_bytes(b"RIFF not really a wave file" * 10)
    payload = copy.deepcopy(scenario.payload)
    payload["settings"]["segments"][0]["audio"] = fake.as_uri()
    report = preflight(payload)
    assert report.not_passed() - {"face_visible"} == {"audio_decodes"}
    assert report.verdict == "fail"


def test_plan_made_for_another_frame_rate_or_length_is_refused(scenario: Scenario) -> None:
    report = preflight(scenario.payload, expected_fps=Fraction(30000, 1001), expected_duration=6.0)
    assert report.not_passed() - {"face_visible"} == {"source_frame_rate", "source_duration"}


def test_job_over_budget_is_refused(scenario: Scenario) -> None:
    report = preflight(scenario.payload, price_per_second=0.2, budget_usd=1.5, already_spent_usd=0.6)
    assert report.not_passed() - {"face_visible"} == {"budget"}


def test_local_media_map_resolves_uploaded_references(scenario: Scenario) -> None:
    payload = copy.deepcopy(scenario.payload)
    local = {"https://cdn.example/video.mp4": scenario.source, "https://cdn.example/a.wav": scenario.dubs[0]}
    payload["inputs"]["video"] = "https://cdn.example/video.mp4"
    payload["settings"]["segments"][0]["audio"] = "https://cdn.example/a.wav"
    payload["settings"]["segments"][1]["audio"] = "https://cdn.example/unknown.wav"
    report = preflight(payload, local_media=local)
    assert report.not_passed() == {"face_visible"}
    assert any("segment 2" in note and "not a local file" in note for note in report.notes)
