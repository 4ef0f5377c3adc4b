"""Best of N: of the checked variations of one job (numberResults > 1), the one to deliver.

The order: the best verdict first (pass, then warn, then fail); among equal verdicts the best
lip-sync score; then the fewest checks not passed; then the first. The others stay alternates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prefect_lipsync.quality.models import QualityReport

_SEVERITY = {"pass": 0, "warn": 1, "fail": 2}


def lipsync_score(report: QualityReport) -> float:
    """Mean over the measured segments of the confidence, a segment with its lips clearly off counting 0.

    0 when nothing was measured. Higher is better; a segment with a low confidence (no lip
    movement found) adds its low confidence.
    """
    if not report.lipsync:
        return 0.0
    values = [0.0 if s.status == "fail" else max(0.0, s.confidence) for s in report.lipsync]
    return sum(values) / len(values)


@dataclass(frozen=True)
class Choice:
    """The variation to deliver, the ones kept as alternates, and why (a sentence for the report)."""

    index: int
    report: QualityReport
    alternates: tuple[int, ...]
    reason: str


def _rank(report: QualityReport) -> tuple[int, float, int]:
    return (_SEVERITY[report.verdict], -round(lipsync_score(report), 3), len(report.not_passed()))


def choose_best(reports: Sequence[QualityReport]) -> Choice:
    """Choose among the checked reports of N variations (in the service's order); ValueError if none."""
    if not reports:
        raise ValueError("choose_best needs the report of at least one variation")
    order = sorted(range(len(reports)), key=lambda i: (*_rank(reports[i]), i))
    best = order[0]
    chosen = reports[best]
    if len(reports) == 1:
        return Choice(best, chosen, (), "The only variation: nothing to choose from.")
    others = [i for i in range(len(reports)) if i != best]
    verdicts = ", ".join(reports[i].verdict for i in others)
    scores = ", ".join(f"{lipsync_score(reports[i]):.2f}" for i in others)
    runner = reports[order[1]]
    if _SEVERITY[chosen.verdict] < _SEVERITY[runner.verdict]:
        deciding = "the best verdict"
    elif round(lipsync_score(chosen), 3) > round(lipsync_score(runner), 3):
        deciding = "the best lip-sync score among the best verdicts"
    elif len(chosen.not_passed()) < len(runner.not_passed()):
        deciding = "the fewest checks not passed among equals"
    else:
        deciding = "a tie, so the first"
    reason = (
        f"Delivered variation {best + 1} of {len(reports)} for {deciding}: verdict {chosen.verdict} "
        f"(others: {verdicts}), lip-sync score {lipsync_score(chosen):.2f} (others: {scores}); "
        f"the others are kept as alternates."
    )
    return Choice(best, chosen, tuple(others), reason)
