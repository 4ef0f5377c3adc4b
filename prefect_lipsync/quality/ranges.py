"""Stretches of time in words, and how much of one stretch a list of others leaves uncovered."""

from __future__ import annotations

from prefect_lipsync.quality.models import TimeRange


def ranges_text(ranges: list[TimeRange], limit: int = 3) -> str:
    shown = ", ".join(str(r) for r in ranges[:limit])
    return shown + (f" and {len(ranges) - limit} more" if len(ranges) > limit else "")


def uncovered(found: TimeRange, reference: list[TimeRange], file_end: float, ref_end: float) -> float:
    """Seconds of `found` that no range of `reference` covers."""
    start, end = found.start, found.end_or(file_end)
    covered = sum(r.overlap(start, end, file_end=ref_end) for r in reference)
    return max(0.0, (end - start) - covered)
