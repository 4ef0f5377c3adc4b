"""One planned job from pre-flight to checked output: the steps a flow runs per language."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect import get_run_logger
from prefect.events import emit_event
from pydantic import BaseModel, Field

from prefect_lipsync.runware.errors import RunwareError, TransientTaskError
from prefect_lipsync.runware.ids import retry_task_uuid
from prefect_lipsync.tasks.lipsync import (
    download_lipsync_result,
    prepare_media,
    submit_lipsync,
    wait_for_lipsync,
)
from prefect_lipsync.tasks.quality import check_quality, preflight_job

if TYPE_CHECKING:
    from prefect_lipsync.blocks.settings import LipsyncSettings
    from prefect_lipsync.flows.endpoint import Endpoint

Verdict = Literal["pass", "warn", "fail"]


class LanguageOutput(BaseModel):
    """The outcome of one language of a run."""

    language: str
    segments: int = Field(default=0, description="Segments in the request (0 for a whole-track dub).")
    task_uuid: str | None = None
    output: str | None = Field(default=None, description="The delivered file; None when there is none.")
    extra_outputs: list[str] = Field(default_factory=list, description="Further results (numberResults > 1).")
    verdict: Verdict | None = None
    cost_usd: float | None = None
    report: str | None = Field(default=None, description="The quality report (JSON) next to the output.")
    pictures: list[str] = Field(default_factory=list)
    quarantined_to: str | None = None
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None

    @property
    def summary(self) -> str:
        if self.error:
            return f"error: {self.error}"
        return f"{self.verdict or 'done'}, {self.output or self.quarantined_to}"


def _emit(event: str, job_language: str, task_uuid: str, payload: dict[str, Any]) -> None:
    emit_event(
        event=f"prefect-lipsync.job.{event}",
        resource={
            "prefect.resource.id": f"prefect-lipsync.job.{task_uuid}",
            "prefect-lipsync.language": job_language,
        },
        payload=payload,
    )


async def run_job(
    job: Any,
    *,
    plan: Any,
    endpoint: Endpoint,
    settings: LipsyncSettings,
    out_dir: Path,
    rerun_nonce: str | None,
) -> LanguageOutput:
    """Pre-flight, upload, submit, wait, download and check one job; errors end in the result, not a raise."""
    logger = get_run_logger()
    request: dict[str, Any] = job.request.to_wire()
    segments = len((request.get("settings") or {}).get("segments") or [])
    outcome = LanguageOutput(language=job.language, segments=segments, warnings=list(job.warnings))
    for warning in job.warnings:
        logger.warning("%s: %s", job.language, warning)

    pre = await preflight_job(job, plan=plan, settings=settings)
    if pre.verdict == "fail":
        outcome.verdict = "fail"
        outcome.error = "pre-flight failed, nothing was uploaded or submitted: " + "; ".join(
            c.message for c in pre.checks if c.status == "fail"
        )
        return outcome

    credentials = endpoint.credentials
    task_uuid = "?"
    try:
        prepared = await prepare_media(request, credentials, audio_ops=job.audio_ops, nonce=rerun_nonce)
        base_uuid: str = prepared["taskUUID"]
        for attempt in range(settings.max_task_retries + 1):
            # A resubmit is a new paid task, but its UUID is the same on every re-run of the flow.
            task_uuid = base_uuid if attempt == 0 else retry_task_uuid(base_uuid, attempt)
            outcome.task_uuid = task_uuid
            await submit_lipsync({**prepared, "taskUUID": task_uuid}, credentials)
            _emit("submitted", job.language, task_uuid, {"segments": segments, "attempt": attempt})
            try:
                results = await wait_for_lipsync(
                    task_uuid,
                    credentials,
                    number_results=job.request.number_results,
                    timeout_s=credentials.job_timeout_s,
                )
                break
            except TransientTaskError as exc:
                if attempt >= settings.max_task_retries:
                    raise
                logger.warning(
                    "%s: task %s failed transiently (%s); resubmitting as a new paid task",
                    job.language,
                    task_uuid,
                    exc.code,
                )
    except RunwareError as exc:
        outcome.error = str(exc)
        _emit("failed", job.language, task_uuid, {"error": exc.__class__.__name__})
        return outcome

    stem, ext = Path(job.output_name).stem, Path(job.output_name).suffix
    paths = []
    for i, result in enumerate(results):
        dest = out_dir / (f"{stem}{ext}" if i == 0 else f"{stem}.{i + 1}{ext}")
        paths.append(Path(await download_lipsync_result(result, credentials, str(dest))))
    costs = [r.cost for r in results if r.cost is not None]
    outcome.cost_usd = round(sum(costs), 4) if costs else None

    report = await check_quality(
        output=str(paths[0]),
        job=job,
        plan=plan,
        settings=settings,
        nsfw_flag=any(bool(r.nsfw_content) for r in results),
        lipsync_expected=not (endpoint.offline or any(r.emulated for r in results)),
    )
    outcome.verdict = report.verdict
    outcome.report = report.report_path
    outcome.pictures = report.pictures
    outcome.quarantined_to = report.quarantined_to
    outcome.output = None if report.quarantined_to else str(paths[0])
    outcome.extra_outputs = [str(p) for p in paths[1:]]
    _emit("completed", job.language, task_uuid, {"verdict": report.verdict, "cost_usd": outcome.cost_usd})
    return outcome
