"""Checks of the output's picture: no black or frozen stretch the source lacks, the picture outside
the face unchanged, the mouth changed (SSIM on frames sampled inside the segments)."""

from __future__ import annotations

from prefect_lipsync.quality.frames import Frame
from prefect_lipsync.quality.models import CheckResult, QualityThresholds, TimeRange
from prefect_lipsync.quality.payload import PlannedSegment
from prefect_lipsync.quality.ranges import ranges_text, uncovered
from prefect_lipsync.quality.ssim import Box, ssim_inside, ssim_outside


def stretch_check(
    name: str,
    what: str,
    found: list[TimeRange],
    explained: list[TimeRange],
    out_end: float,
    src_end: float,
    t: QualityThresholds,
) -> CheckResult:
    """Fail on stretches of `found` that `explained` (the source's own, ...) does not cover."""
    new = [r for r in found if uncovered(r, explained, out_end, src_end) > t.source_overlap_s]
    total = sum(r.end_or(out_end) - r.start for r in new)
    return CheckResult(
        name=name,
        status="fail" if new else "pass",
        value=round(total, 3),
        threshold=f"no {what} stretch the source lacks",
        message=f"{what.capitalize()} at {ranges_text(new)}, which the source does not have."
        if new
        else f"No {what} stretch that the source lacks.",
        at=new,
    )


def sample_times(segments: list[PlannedSegment], duration: float, limit: int) -> list[float]:
    if segments:
        chosen = (
            segments
            if len(segments) <= limit
            else [segments[round(i * (len(segments) - 1) / (limit - 1))] for i in range(limit)]
            if limit > 1
            else segments[:1]
        )
        return [(s.start + s.end) / 2 for s in chosen]
    return [duration * f for f in (0.25, 0.5, 0.75)]


def region_checks(
    times: list[float],
    src_frames: list[Frame],
    out_frames: list[Frame],
    segments: list[PlannedSegment],
    face_box: Box,
    mouth_box: Box | None,
    lipsync_expected: bool,
    t: QualityThresholds,
) -> list[CheckResult]:
    pairs = list(zip(times, src_frames, out_frames, strict=False))
    if not pairs:
        return []
    outside = [(at, ssim_outside(a, b, face_box)) for at, a, b in pairs]
    low = [
        TimeRange(start=round(at, 3), end=round(at, 3)) for at, v in outside if v < t.outside_face_min_ssim
    ]
    least = min(v for _, v in outside)
    checks = [
        CheckResult(
            name="outside_face_unchanged",
            status="fail" if low else "pass",
            value=round(least, 4),
            threshold=f"SSIM outside the face >= {t.outside_face_min_ssim:g}",
            message=f"Outside the face the picture matches the source (lowest SSIM {least:.3f} over "
            f"{len(outside)} frames)."
            if not low
            else f"The picture outside the face differs from the source (SSIM {least:.3f}) at {ranges_text(low)}.",
            at=low,
        )
    ]
    if mouth_box is not None and segments:
        mouth = [ssim_inside(a, b, mouth_box) for _, a, b in pairs]
        mean = sum(mouth) / len(mouth)
        changed = mean < t.mouth_changed_max_ssim
        status = "pass" if changed else ("fail" if lipsync_expected else "warn")
        why = "" if lipsync_expected else " (expected: this output did not come from a lip-sync model)"
        checks.append(
            CheckResult(
                name="mouth_changed",
                status=status,
                value=round(mean, 4),
                threshold=f"mean mouth SSIM < {t.mouth_changed_max_ssim:g}",
                message=f"The mouth region {'changed' if changed else 'did not change'} inside the segments "
                f"(mean SSIM {mean:.3f}){why}.",
            )
        )
    return checks
