"""One planned job from pre-flight to checked output: the steps a flow runs per language."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect import get_run_logger
from prefect.concurrency.asyncio import concurrency
from prefect.events import emit_event
from pydantic import BaseModel, Field

from prefect_lipsync.runware.errors import RunwareError, TransientTaskError
from prefect_lipsync.runware.ids import retry_task_uuid
from prefect_lipsync.runware.models import Sync3Result
from prefect_lipsync.tasks.lipsync import (
    download_lipsync_result,
    prepare_media,
    render_planned_audio,
    submit_lipsync,
    wait_for_lipsync,
)
from prefect_lipsync.tasks.quality import check_quality, preflight_job

if TYPE_CHECKING:
    from prefect_lipsync.blocks.settings import LipsyncSettings
    from prefect_lipsync.flows.endpoint import Endpoint
    from prefect_lipsync.manifest import PlannedJob
    from prefect_lipsync.tasks.planning import RunPlan

Verdict = Literal["pass", "warn", "fail"]
_SEVERITY: list[Verdict] = ["pass", "warn", "fail"]


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


def _emit(event: str, language: str, task_uuid: str, payload: dict[str, Any]) -> None:
    emit_event(
        event=f"prefect-lipsync.job.{event}",
        resource={
            "prefect.resource.id": f"prefect-lipsync.job.{task_uuid}",
            "prefect-lipsync.language": language,
        },
        payload=payload,
    )


@contextlib.asynccontextmanager
async def _global_slot(name: str | None) -> AsyncIterator[None]:
    """A slot of a Prefect global concurrency limit shared by all workers, when one is configured."""
    if not name:
        yield
        return
    async with concurrency(name, occupy=1):
        yield


async def run_job(
    job: PlannedJob,
    *,
    plan: RunPlan,
    endpoint: Endpoint,
    settings: LipsyncSettings,
    out_dir: Path,
    rerun_nonce: str | None,
) -> LanguageOutput:
    """Pre-flight, upload, submit, wait, download and check one job; service errors end in the result."""
    logger = get_run_logger()
    request: dict[str, Any] = job.request.to_wire()
    segments = len((request.get("settings") or {}).get("segments") or [])
    outcome = LanguageOutput(language=job.language, segments=segments, warnings=list(job.warnings))
    for warning in job.warnings:
        logger.warning("%s: %s", job.language, warning)

    if job.audio_ops:  # pre-flight listens to the audio exactly as it will be uploaded
        await render_planned_audio(job.audio_ops)
    pre = await preflight_job(job, plan=plan, settings=settings)
    if pre.verdict == "fail":
        outcome.verdict = "fail"
        outcome.error = "pre-flight failed, nothing was uploaded or submitted: " + "; ".join(
            c.message for c in pre.checks if c.status == "fail"
        )
        return outcome

    try:
        prepared = await prepare_media(
            request, endpoint.credentials, audio_ops=job.audio_ops, nonce=rerun_nonce
        )
        async with _global_slot(settings.global_concurrency_limit):
            results = await _submit_and_wait(job, prepared, outcome, endpoint, settings)
    except RunwareError as exc:
        outcome.error = str(exc)
        _emit("failed", job.language, outcome.task_uuid or "-", {"error": exc.__class__.__name__})
        return outcome
    await _deliver(job, results, outcome, plan=plan, endpoint=endpoint, settings=settings, out_dir=out_dir)
    _emit(
        "completed",
        job.language,
        outcome.task_uuid or "-",
        {"verdict": outcome.verdict, "cost": outcome.cost_usd},
    )
    return outcome


async def _submit_and_wait(
    job: PlannedJob,
    prepared: dict[str, Any],
    outcome: LanguageOutput,
    endpoint: Endpoint,
    settings: LipsyncSettings,
) -> list[Sync3Result]:
    """Submit and wait; a task the provider failed transiently is resubmitted (a new paid task)."""
    logger = get_run_logger()
    credentials = endpoint.credentials
    base_uuid: str = prepared["taskUUID"]
    for attempt in range(settings.max_task_retries + 1):
        # A resubmit is a new paid task, but its UUID is the same on every re-run of the flow.
        task_uuid = base_uuid if attempt == 0 else retry_task_uuid(base_uuid, attempt)
        outcome.task_uuid = task_uuid
        await submit_lipsync({**prepared, "taskUUID": task_uuid}, credentials)
        _emit("submitted", job.language, task_uuid, {"segments": outcome.segments, "attempt": attempt})
        try:
            return await wait_for_lipsync(
                task_uuid,
                credentials,
                number_results=job.request.number_results,
                timeout_s=credentials.job_timeout_s,
            )
        except TransientTaskError as exc:
            if attempt >= settings.max_task_retries:
                raise
            logger.warning(
                "%s: task %s failed transiently (%s); resubmitting as a new paid task",
                job.language,
                task_uuid,
                exc.code,
            )
    raise AssertionError("unreachable")


async def _deliver(
    job: PlannedJob,
    results: list[Sync3Result],
    outcome: LanguageOutput,
    *,
    plan: RunPlan,
    endpoint: Endpoint,
    settings: LipsyncSettings,
    out_dir: Path,
) -> None:
    """Download every result and check each with its own safety flag (each is a deliverable)."""
    stem, ext = Path(job.output_name).stem, Path(job.output_name).suffix
    paths = []
    for i, result in enumerate(results):
        dest = out_dir / (f"{stem}{ext}" if i == 0 else f"{stem}.{i + 1}{ext}")
        paths.append(Path(await download_lipsync_result(result, endpoint.credentials, str(dest))))
    costs = [r.cost for r in results if r.cost is not None]
    outcome.cost_usd = round(sum(costs), 4) if costs else None
    checked = [
        await check_quality(
            output=str(path),
            job=job,
            plan=plan,
            settings=settings,
            nsfw_flag=result.nsfw_content,
            lipsync_expected=not (endpoint.offline or result.emulated),
        )
        for path, result in zip(paths, results, strict=True)
    ]
    first = checked[0]
    outcome.verdict = max((c.report.verdict for c in checked), key=_SEVERITY.index)
    outcome.report = first.report_path
    outcome.pictures = [p for c in checked for p in c.pictures]
    outcome.quarantined_to = next((c.quarantined_to for c in checked if c.quarantined_to), None)
    outcome.output = None if first.quarantined_to else str(paths[0])
    outcome.extra_outputs = [
        str(p) for p, c in zip(paths[1:], checked[1:], strict=True) if not c.quarantined_to
    ]
