"""The one entry point for checking a planned job's output: the CLI and the flow both call it.

It reads the request and the face box from the planned job (a `PlannedJob`, or one job of
`prefect-lipsync plan --json`), chooses the face and mouth boxes, and runs every check,
`lipsync_offset` included, so `prefect-lipsync check --plan` and the flow agree on the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect_lipsync.manifest.plan_models import PlannedJob
from prefect_lipsync.quality.checks import check_output
from prefect_lipsync.quality.face import Box, FoundFace, mouth_box_of
from prefect_lipsync.quality.frames import sample_frames
from prefect_lipsync.quality.models import QualityReport, QualityThresholds
from prefect_lipsync.quality.payload import LocalMedia
from prefect_lipsync.quality.source_analysis import SourceAnalysis, find_face_in
from prefect_lipsync.quality.streams import probe_streams

# A found face that overlaps the plan's box at least this much (intersection over union) is the same face.
SAME_FACE_IOU = 0.3


@dataclass(frozen=True)
class FaceChoice:
    """The boxes the region checks use, and where they came from (said in the report)."""

    face: Box | None
    mouth: Box | None
    why: str


def _as_box(value: Any) -> Box | None:
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    x1, y1, x2, y2 = (int(v) for v in value)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


PlannedJobLike = PlannedJob | Mapping[str, Any]
"""A `PlannedJob`, or one job of `prefect-lipsync plan --json` (`request`, optional `face_box`)."""


def job_request(job: PlannedJobLike) -> dict[str, Any]:
    """The wire payload of a `PlannedJob` or of a `plan --json` job."""
    if isinstance(job, PlannedJob):
        return job.request.to_wire()
    request = job.get("request")
    return dict(request) if isinstance(request, Mapping) else {}


def job_face_box(job: PlannedJobLike) -> Box | None:
    """The planned face box (`face_box`: x1, y1, x2, y2), if the plan has one."""
    # getattr: PlannedJob.face_box is optional in the planner's model.
    value = getattr(job, "face_box", None) if isinstance(job, PlannedJob) else job.get("face_box")
    return _as_box(value)


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _look_for_face(source: Path, timeout: float) -> FoundFace | None:
    """A few frames of the source, sought, searched for a face (when no shared analysis has them)."""
    facts = probe_streams(source, timeout=timeout)
    if not (facts.fps and facts.width and facts.height and facts.duration > 0):
        return None
    times = [facts.duration * f for f in (0.25, 0.5, 0.75)]
    size = (facts.width, facts.height)
    frames = sample_frames(source, times, size=size, fps=facts.fps, clock=facts.clock, timeout=timeout)
    return find_face_in(frames)


def choose_face(
    planned: Box | None, source: Path, analysis: SourceAnalysis | None, timeout: float
) -> FaceChoice:
    """The face box: the plan's (from the manifest's speaker), else the face finder's.

    The mouth box comes from the finder's landmarks when it found the same face, else it is the
    fixed part of the face box where a frontal mouth sits (`mouth_box_of`).
    """
    found = analysis.face if analysis is not None else _look_for_face(source, timeout)
    if planned is not None:
        if found is not None and _iou(found.face, planned) >= SAME_FACE_IOU and "landmarks" in found.method:
            return FaceChoice(planned, found.mouth, f"face box from the plan, mouth from {found.method}")
        return FaceChoice(planned, mouth_box_of(planned), "face box from the plan")
    if found is not None:
        return FaceChoice(found.face, found.mouth, f"face found by {found.method}")
    return FaceChoice(None, None, "no face box in the plan and no face found in the source")


def check_planned_output(
    output: Path,
    source: Path,
    job: PlannedJobLike,
    thresholds: QualityThresholds | None = None,
    *,
    nsfw_flag: bool | None,
    lipsync_expected: bool,
    source_analysis: SourceAnalysis | None = None,
    local_media: LocalMedia | None = None,
    quarantine_flagged: bool = True,
    timeout: float = 600.0,
) -> QualityReport:
    """Every check of a planned job's output, the face box chosen as the flow chooses it.

    `job` is a `PlannedJob` or one job of `prefect-lipsync plan --json` (a mapping with `request`
    and an optional `face_box`). `source_analysis` is the run's shared analysis of the source
    (`analyze_source`), or None to decode the source here. The report records the face and mouth
    boxes used (`report.face_box`, `report.mouth_box`) for its pictures.
    """
    source = Path(source)
    choice = choose_face(job_face_box(job), source, source_analysis, timeout)
    report = check_output(
        Path(output),
        source=source,
        request_payload=job_request(job),
        local_media=local_media,
        thresholds=thresholds,
        face_box=choice.face,
        mouth_box=choice.mouth,
        nsfw_flag=nsfw_flag,
        lipsync_expected=lipsync_expected,
        quarantine_flagged=quarantine_flagged,
        measure_lipsync=True,
        source_analysis=source_analysis,
        face_note=choice.why,
        timeout=timeout,
    )
    return report
