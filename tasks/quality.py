"""Prefect tasks for the checks: pre-flight before anything is paid, quality and safety after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from prefect import task
from prefect_lipsync.tasks.report import publish_quality_report
from pydantic import BaseModel, Field

from prefect_lipsync.quality import QualityReport, check_output

if TYPE_CHECKING:
    from prefect_lipsync.blocks.settings import LipsyncSettings


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
async def preflight_job(job: Any, plan: Any, settings: LipsyncSettings) -> QualityReport:
    """The source decodes and is what the plan assumed; every audio used is there and not silent."""
    from prefect_lipsync.quality.preflight import preflight

    source = plan.video_path
    return await anyio.to_thread.run_sync(
        lambda: preflight(
            job.request.to_wire(),
            source=Path(source),
            local_media=None,
            expected_fps=plan.video_fps,
            expected_duration=plan.video_duration,
            thresholds=settings.quality,
            price_per_second=settings.price_per_second_usd,
            budget_usd=None,  # the run's budget is checked once for all jobs, before any job starts
        )
    )


@task(
    name="check-quality", description="Quality and safety checks of one output, with its report and pictures."
)
async def check_quality(
    output: str,
    job: Any,
    plan: Any,
    settings: LipsyncSettings,
    nsfw_flag: bool | None,
    lipsync_expected: bool,
) -> CheckedOutput:
    """Run every check on `output`; write the report and pictures beside it; quarantine a flagged output."""
    from prefect_lipsync.quality.pictures import render_pictures

    out = Path(output)

    def work() -> CheckedOutput:
        report = check_output(
            out,
            source=Path(plan.video_path),
            request_payload=job.request.to_wire(),
            thresholds=settings.quality,
            face_box=job.face_box,
            nsfw_flag=nsfw_flag,
            lipsync_expected=lipsync_expected,
        )
        delivered = Path(report.quarantined_to) if report.quarantined_to else out
        pictures = [
            str(p)
            for p in render_pictures(
                delivered,
                report,
                source=Path(plan.video_path),
                request_payload=job.request.to_wire(),
                face_box=job.face_box,
            )
        ]
        report_path = delivered.with_name(delivered.name + ".report.json")
        tmp = report_path.with_name("." + report_path.name + ".tmp")
        tmp.write_text(json.dumps(report.model_dump(mode="json"), indent=2), encoding="utf-8")
        tmp.replace(report_path)
        return CheckedOutput(report=report, report_path=str(report_path), pictures=pictures)

    checked = await anyio.to_thread.run_sync(work)
    await publish_quality_report(job.language, plan.name, checked.report, checked.pictures)
    return checked
