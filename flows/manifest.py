"""One manifest -> one checked output per language, in the caller's flow run: the work every flow
shares. Each job's steps are task runs of the public tasks (`TaskSteps`), the core's JobRunner keeps
their order, the journal and the delivery. `localize-manifest` is one manifest of a batch as a task run."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.blocks.settings import LipsyncSettings
from prefect_lipsync.flows.options import QualityPolicy, RunOptions
from prefect_lipsync.flows.review import apply_quality_policy
from prefect_lipsync.manifest import Plan, PlannedJob
from prefect_lipsync.pipeline import JobJournal, JobRunner, LanguageOutput, RunOutcome, RunPlan, run_jobs
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.quality import QualityReport
from prefect_lipsync.tasks.clients import client_session
from prefect_lipsync.tasks.endpoint import OFFLINE_NOTICE, Endpoint, runware_endpoint
from prefect_lipsync.tasks.events import emit_output_event
from prefect_lipsync.tasks.media import aprobe_media
from prefect_lipsync.tasks.report import (
    BatchReport,
    Progress,
    artifact_key,
    create_progress,
    publish_quality_report,
    publish_run_summary,
)
from prefect_lipsync.tasks.resilience import (
    PREFECT_API_ERRORS,
    best_effort,
    reports_in_background,
    with_api_retries,
)
from prefect_lipsync.tasks.segments import abuild_segments
from prefect_lipsync.tasks.steps import TaskSteps

#: Set by `localize_batch` around the manifests it runs in its own process: they tell the batch's
#: progress and summary how they did instead of writing their own.
BATCH_REPORT: ContextVar[BatchReport | None] = ContextVar("lipsync_batch_report", default=None)


class LocalizeResult(RunOutcome):
    """What `localize_video` made: one entry per language."""


async def localize_manifest(
    manifest: Path, out_root: Destination, languages: list[str] | None, options: RunOptions
) -> LocalizeResult:
    """One manifest's jobs against the run's endpoint: resolved once, before anything is planned or paid."""
    logger = get_run_logger()
    async with runware_endpoint(
        options.credentials,
        options.credentials_block,
        options.base_url,
        allow_emulator=options.allow_emulator,
    ) as endpoint:
        if endpoint.offline:
            logger.warning(OFFLINE_NOTICE)
        return await localize_at(endpoint, manifest, out_root, languages, options)


async def localize_at(
    endpoint: Endpoint,
    manifest: Path,
    out_root: Destination,
    languages: list[str] | None,
    options: RunOptions,
) -> LocalizeResult:
    """One manifest's jobs against an endpoint already resolved; its reports are written in the
    background and waited for at the end of the outermost run (this one, or the batch it is part of)."""
    async with reports_in_background(), client_session(endpoint.credentials) as client:
        return await _run_plan(manifest.resolve(), out_root, languages, endpoint, client, options)


async def _run_plan(
    manifest: Path,
    out_root: Destination,
    languages: list[str] | None,
    endpoint: Endpoint,
    client: Any,
    options: RunOptions,
) -> LocalizeResult:
    logger = get_run_logger()
    team = options.team_settings
    settings = team.run_settings()
    if endpoint.credentials.job_timeout_s is not None:
        settings = settings.model_copy(update={"job_timeout_s": endpoint.credentials.job_timeout_s})
    stem = manifest_run_name(manifest, "")[1:]
    building = abuild_segments.with_options(task_run_name=f"plan-{stem}")
    jobs = await with_api_retries(lambda: building(str(manifest), languages=languages, settings=settings))
    plan = await _run_plan_of(manifest, jobs, settings.price_per_second_usd)
    out_dir = out_root.child(plan.name)
    out_dir.local.mkdir(parents=True, exist_ok=True)
    runner = JobRunner(
        client,
        settings,
        out_dir=out_dir,
        journal=JobJournal.for_endpoint(endpoint.base_url),
        offline=endpoint.offline,
        policy=options.quality_policy,
        nonce=options.rerun_nonce,
        steps=TaskSteps(
            client,
            endpoint.credentials,
            settings,
            run_name=plan.name,
            nonce=options.rerun_nonce,
            offline=endpoint.offline,
            global_concurrency_limit=team.global_concurrency_limit,
        ),
    )
    slug = artifact_key(plan.name) or "run"
    batch = BATCH_REPORT.get()
    if batch is not None:
        progress = Progress(None, len(plan.jobs))  # the batch's own bar counts its manifests
    else:
        try:
            progress = await with_api_retries(lambda: create_progress(slug, total=len(plan.jobs)), attempts=3)
        except PREFECT_API_ERRORS:
            progress = Progress(None, len(plan.jobs))  # the jobs matter more than their progress bar

    async def done(output: LanguageOutput) -> None:
        for warning in output.warnings:
            logger.warning("%s: %s", output.language, warning)
        emit_output_event(plan.name, output)
        if progress.step(f"{output.language}: {output.summary}"):
            await best_effort(progress.flush, "the progress")
        if output.report:
            # The working copies beside the outbox, not the objects just published: no read back.
            local = out_dir.local_of(output.report)
            report = QualityReport.model_validate_json(local.read_text(encoding="utf-8"))
            pictures = [str(out_dir.local_of(p)) for p in output.pictures]
            await best_effort(
                lambda: publish_quality_report(output.language, plan.name, report, pictures),
                f"the quality report of {output.language}",
            )

    outputs = await run_jobs(runner, plan, on_done=done)
    await best_effort(progress.flush, "the progress")
    costs = [o.cost_usd for o in outputs if o.cost_usd is not None]
    result = LocalizeResult(
        manifest=str(manifest),
        name=plan.name,
        offline=endpoint.offline,
        outputs=outputs,
        estimated_cost_usd=plan.estimated_cost_usd,
        cost_usd=round(sum(costs), 4) if costs else None,
    )
    await best_effort(
        lambda: publish_run_summary(
            slug,
            result.outputs,
            estimated_cost_usd=plan.estimated_cost_usd,
            offline=endpoint.offline,
            with_cost=batch is None,
        ),
        "the run summary",
    )
    if batch is not None:
        batch.record(result)
    out_dir.write_text("result.json", result.model_dump_json(indent=2))
    for output in outputs:
        if output.error:
            logger.error("%s: %s", output.language, output.error)
    return result


async def _run_plan_of(manifest: Path, jobs: list[PlannedJob], price_per_second: float) -> RunPlan:
    """The run's plan around the jobs `build_segments` made: its name, its source probed (a cached
    probe, shown as its own task run), the estimate the planner priced."""
    source = jobs[0].source
    probing = aprobe_media.with_options(task_run_name=f"probe-{Path(source).name}")
    video = await with_api_retries(lambda: probing(source))
    seconds = round(sum(job.video_duration * job.request.number_results for job in jobs), 3)
    return RunPlan(
        manifest=str(manifest),
        name=jobs[0].run_name or Path(source).stem,
        video_ref=source,
        video_fps=video.video.fps if video.video else None,
        video_duration=video.duration,
        plan=Plan(
            jobs=jobs,
            estimated_seconds=seconds,
            estimated_cost_usd=round(seconds * price_per_second, 4),
            price_per_second=price_per_second,
        ),
    )


def manifest_run_name(manifest: Path, verb: str = "localize") -> str:
    """A task run's name after its manifest: `inbox/night-0001.yaml` -> `localize-night-0001`;
    `m3/manifest.yaml` -> `localize-m3-manifest`."""
    stem = manifest.stem if manifest.stem != "manifest" else f"{manifest.parent.name}-{manifest.stem}"
    return f"{verb}-{stem}"


@task(
    name="localize-manifest",
    description="One manifest of a batch: plan, then each language's job (task runs inside), checks, delivery.",
    cache_policy=NO_CACHE,  # the jobs' journal is what makes a re-run free
)
async def localize_manifest_task(
    manifest: str,
    out_dir: str,
    credentials: RunwareCredentials,
    offline: bool = False,
    settings: LipsyncSettings | None = None,
    quality_policy: QualityPolicy = "fail",
    rerun_nonce: str | None = None,
) -> LocalizeResult:
    """One manifest of a batch, in the batch's process: as `localize_video`, as a task run.

    `credentials` are the batch's, resolved once (a block, the environment's key, or the emulator the
    batch started: `offline`), so every manifest shares one client and one poller.
    """
    options = RunOptions(settings=settings, quality_policy=quality_policy, rerun_nonce=rerun_nonce)
    out_root = Destination.of(out_dir)
    result = await localize_at(Endpoint(credentials, offline), Path(manifest), out_root, None, options)
    return await apply_quality_policy(result, options, out_root=out_root)
