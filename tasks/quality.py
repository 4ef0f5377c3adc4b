"""Prefect tasks for the checks: pre-flight before anything is paid, quality and safety after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from prefect import task
from pydantic import BaseModel, Field

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.quality import QualityReport, check_output
from prefect_lipsync.quality.pictures import write_pictures
from prefect_lipsync.quality.preflight import preflight
from prefect_lipsync.tasks.report import publish_quality_report

if TYPE_CHECKING:
    from prefect_lipsync.blocks.settings import LipsyncSettings
    from prefect_lipsync.manifest import PlannedJob
    from prefect_lipsync.tasks.planning import RunPlan

Box = tuple[int, int, int, int]


def mouth_box_of(face: Box) -> Box:
    """Where the mouth is in a frontal face box: the middle half across, 60-80 % down."""
    x1, y1, x2, y2 = face
    w, h = x2 - x1, y2 - y1
    return (x1 + w // 4, y1 + h * 3 // 5, x2 - w // 4, y1 + h * 4 // 5)


class CheckedOutput(BaseModel):
    """A quality report and the files written next to the output."""

    report: QualityReport
    report_path: str
    pictures: list[str] = Field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.report.verdict

    @property
    def quarantined_to(self) -> str | None:
        return self.report.quarantined_to


@task(name="preflight-job", description="Check a planned job's media before any upload or submit.")
async def preflight_job(job: PlannedJob, plan: RunPlan, settings: LipsyncSettings) -> QualityReport:
    """The source decodes and is what the plan assumed; every audio used is there and not silent."""
    payload = job.request.to_wire()
    return await anyio.to_thread.run_sync(
        lambda: preflight(
            payload,
            source=Path(plan.video_path),
            expected_fps=plan.video_fps,
            expected_duration=plan.video_duration,
            thresholds=settings.quality,
            price_per_second=settings.price_per_second_usd,
            budget_usd=None,  # the run's budget is checked once for all jobs, before any job starts
        )
    )


def _write_report(report: QualityReport, delivered: Path) -> Path:
    text = json.dumps(report.model_dump(mode="json"), indent=2)
    return write_text_atomic(delivered.with_name(delivered.name + ".report.json"), text)


@task(
    name="check-quality", description="Quality and safety checks of one output, with its report and pictures."
)
async def check_quality(
    output: str,
    job: PlannedJob,
    plan: RunPlan,
    settings: LipsyncSettings,
    nsfw_flag: bool | None,
    lipsync_expected: bool,
) -> CheckedOutput:
    """Run every check on `output`; write the report and pictures beside it; quarantine a flagged output."""
    out = Path(output)
    source = Path(plan.video_path)
    payload: dict[str, Any] = job.request.to_wire()
    mouth = mouth_box_of(plan.face_box) if plan.face_box else None

    def work() -> CheckedOutput:
        report = check_output(
            out,
            source=source,
            request_payload=payload,
            thresholds=settings.quality,
            face_box=plan.face_box,
            mouth_box=mouth,
            nsfw_flag=nsfw_flag,
            lipsync_expected=lipsync_expected,
        )
        written = write_pictures(report, output=out, source=source, request_payload=payload, mouth_box=mouth)
        delivered = Path(report.quarantined_to) if report.quarantined_to else out
        return CheckedOutput(
            report=report,
            report_path=str(_write_report(report, delivered)),
            pictures=[str(p) for p in written.values()],
        )

    checked = await anyio.to_thread.run_sync(work)
    await publish_quality_report(job.language, plan.name, checked.report, checked.pictures)
    return checked
