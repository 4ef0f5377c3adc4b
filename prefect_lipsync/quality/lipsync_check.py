"""The `lipsync_offset` check: per segment, how late the lips move after the output's own audio.

It needs the mouth crop of every frame and the audio as 16 kHz PCM, both kept by the one
analysis pass of the output (`analyze(..., mouth=..., pcm=True)`); `lipsync.py` does the measuring.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from prefect_lipsync.quality.analysis import PCM_RATE, Findings
from prefect_lipsync.quality.lipsync import (
    FloatArray,
    LagMeasure,
    audio_envelope,
    envelope_change,
    measure_lag,
    mouth_motion,
)
from prefect_lipsync.quality.models import CheckResult, LipsyncSegment, QualityThresholds, Status, TimeRange
from prefect_lipsync.quality.payload import PlannedSegment

NAME = "lipsync_offset"


def _unit(x: FloatArray) -> list[float]:
    """0..1 (divided by the peak), rounded: a curve for the report and its picture."""
    peak = float(x.max()) if x.size else 0.0
    scaled = x / peak if peak > 1e-12 else np.zeros_like(x)
    return [round(float(v), 3) for v in scaled]


def _status(measure: LagMeasure, t: QualityThresholds) -> Status:
    if not measure.moving or measure.confidence < t.lipsync_min_confidence:
        return "warn"
    return "fail" if abs(measure.lag_s * 1000) > t.lipsync_max_offset_ms else "pass"


def _windows(segments: list[PlannedSegment], duration: float) -> list[tuple[str, float, float]]:
    if segments:
        return [(s.label, s.start, s.end) for s in segments]
    return [("the whole video", 0.0, duration)]


def measure_segments(
    found: Findings, segments: list[PlannedSegment], *, fps: Fraction, duration: float, t: QualityThresholds
) -> tuple[list[LipsyncSegment], list[str]]:
    """The lip-sync measure of each segment (or of the whole file), and notes on what was not measured."""
    if found.mouth_crops is None or found.pcm16k is None:
        return [], []
    rate = float(fps)
    motion = mouth_motion(found.mouth_crops)
    audio = envelope_change(audio_envelope(found.pcm16k, rate=PCM_RATE, fps=rate, frames=motion.size))
    max_lag = max(1, round(t.lipsync_search_ms / 1000 * rate))
    measured: list[LipsyncSegment] = []
    notes: list[str] = []
    for label, start, end in _windows(segments, duration):
        first, last = math.ceil(start * rate), math.floor(end * rate)
        result = measure_lag(motion, audio, start=first, end=last, fps=rate, max_lag=max_lag)
        if result is None:
            notes.append(f"Lip sync of {label} not measured: too short once kept clear of the file's ends.")
            continue
        measure, _ = result
        lo, hi = max(first, max_lag), min(last, motion.size - max_lag)
        measured.append(
            LipsyncSegment(
                label=label,
                start=round(lo / rate, 3),
                end=round(hi / rate, 3),
                lag_ms=round(measure.lag_s * 1000, 1),
                confidence=round(measure.confidence, 3),
                status=_status(measure, t),
                fps=rate,
                motion=_unit(motion[lo:hi]),
                envelope=_unit(audio[lo:hi]),
            )
        )
    return measured, notes


def lipsync_offset_check(
    measured: list[LipsyncSegment], t: QualityThresholds, *, lipsync_expected: bool
) -> CheckResult | None:
    """Pass when every measured segment's lips are within the offset, confidently; fail on a clear offset.

    Low confidence warns (no lip movement that follows the audio: what the emulator's previews show).
    For an output that did not come from a lip-sync model, an offset only warns too.
    """
    if not measured:
        return None
    threshold = f"|lag| <= {t.lipsync_max_offset_ms:g} ms at confidence >= {t.lipsync_min_confidence:g}"
    confident = [m for m in measured if m.status != "warn"]
    offset = [m for m in confident if m.status == "fail"]
    shown = (
        max(confident, key=lambda m: abs(m.lag_ms))
        if confident
        else max(measured, key=lambda m: m.confidence)
    )
    where = f"{shown.label}; {len(measured)} segment(s) measured"
    if offset:
        status: Status = "fail" if lipsync_expected else "warn"
        why = "" if lipsync_expected else " (this output did not come from a lip-sync model)"
        message = (
            f"The lips move {shown.lag_ms:+.0f} ms off the audio at worst (confidence {shown.confidence:.2f}; "
            f"{where}){why}."
        )
    elif len(confident) < len(measured):
        status = "warn"
        low = [m for m in measured if m.status == "warn"]
        message = (
            f"No lip movement that follows the audio in {len(low)} of {len(measured)} segment(s) "
            f"(confidence {min(m.confidence for m in low):.2f} at lowest)."
        )
    else:
        status = "pass"
        message = (
            f"The lips follow the audio within {abs(shown.lag_ms):.0f} ms (confidence "
            f"{min(m.confidence for m in measured):.2f} at lowest; {where})."
        )
    return CheckResult(
        name=NAME,
        status=status,
        value=shown.lag_ms,
        threshold=threshold,
        message=message,
        at=[TimeRange(start=m.start, end=m.end) for m in offset],
    )
