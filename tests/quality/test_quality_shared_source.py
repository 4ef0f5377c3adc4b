"""One analysis of the source per run gives pre-flight and the checks the same answers as decoding
the source for each language, and the truncated source is still refused."""

from __future__ import annotations

import copy
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.media.synth import face_box, mouth_box
from prefect_lipsync.quality import analyze_source, check_output, preflight
from prefect_lipsync.quality.models import QualityReport

SIZE = (320, 180)
Scenario = Any


def _summary(report: QualityReport) -> list[tuple[str, str, object]]:
    return [(c.name, c.status, c.value) for c in report.checks]


@pytest.mark.parametrize("fault", ["clean", "black_second", "frozen_tail", "audio_delay_200ms"])
def test_checks_with_a_shared_source_analysis_agree_with_checks_alone(
    scenario: Scenario, broken: Callable[[str], Path], fault: str
) -> None:
    output = scenario.clean if fault == "clean" else broken(fault)
    analysis = analyze_source(scenario.source, request_payloads=[scenario.payload])
    boxes = {"face_box": face_box(*SIZE), "mouth_box": mouth_box(*SIZE), "lipsync_expected": False}
    shared = check_output(
        output, source=scenario.source, request_payload=scenario.payload, source_analysis=analysis, **boxes
    )  # type: ignore[arg-type]
    alone = check_output(output, source=scenario.source, request_payload=scenario.payload, **boxes)  # type: ignore[arg-type]
    assert _summary(shared) == _summary(alone)


def test_the_source_is_decoded_for_frozen_stretches_once_per_run(scenario: Scenario, broken: Any) -> None:
    analysis = analyze_source(scenario.source, request_payloads=[scenario.payload])
    assert analysis._frozen is None  # not decoded until an output shows a freeze
    frozen = broken("frozen_tail")
    for _ in range(2):  # two languages
        check_output(
            frozen, source=scenario.source, request_payload=scenario.payload, source_analysis=analysis
        )
    assert analysis._frozen == []  # the talking card never freezes; decoded once, kept


def test_preflight_with_a_shared_analysis_agrees_and_still_refuses_a_truncated_source(
    scenario: Scenario, broken: Any
) -> None:
    analysis = analyze_source(scenario.source, request_payloads=[scenario.payload])
    shared = preflight(
        scenario.payload, expected_fps=Fraction(25), expected_duration=5.0, source_analysis=analysis
    )
    alone = preflight(scenario.payload, expected_fps=Fraction(25), expected_duration=5.0)
    assert _summary(shared) == _summary(alone)
    payload = copy.deepcopy(scenario.payload)
    truncated = broken("truncated")
    payload["inputs"]["video"] = truncated.as_uri()
    report = preflight(payload, source_analysis=analyze_source(truncated, request_payloads=[payload]))
    assert report.verdict == "fail" and report.not_passed() == {"source_decodes"}
