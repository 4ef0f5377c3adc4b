"""Reusable flows: one manifest -> one checked output per language; a folder of manifests; one video.

Each flow can run on its own (a deployment, the CLI) or as a subflow of a larger media pipeline.
The way of a job is the core's `JobRunner`; these flows add what is Prefect's: task runs, artifacts,
events, the pause for a reviewer, concurrency slots. Jobs of a run share one Runware client, and so
one batched poller, on the flow's event loop.

A batch runs each manifest in its own process as a task run (`localize-manifest`, its languages'
task runs inside), not as a subflow run: a task run costs the Prefect API no request (its states
travel as events), where a subflow run cost seven, and on Prefect's temporary SQLite server those
writes failed one another (503) into the client's backoff of up to 62 s (bench_batch.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.blocks.settings import LipsyncSettings
from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.flows.options import QualityPolicy, RunOptions
from prefect_lipsync.manifest import Plan, PlannedJob, read_manifest
from prefect_lipsync.manifest.output_names import output_stem
from prefect_lipsync.pipeline import JobJournal, JobRunner, LanguageOutput, RunOutcome, RunPlan, run_jobs
from prefect_lipsync.pipeline.delivery import record_rejection, release_held, report_path_of
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.pipeline.steps import source_of
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
    failing_checks,
    publish_quality_report,
    publish_run_summary,
    quality_findings_markdown,
)
from prefect_lipsync.tasks.resilience import (
    PREFECT_API_ERRORS,
    best_effort,
    reports_in_background,
    with_api_retries,
)
from prefect_lipsync.tasks.segments import abuild_segments
from prefect_lipsync.tasks.steps import TaskSteps

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from prefect.client.schemas.objects import State

#: Names and language codes that become file names: no separators, no leading dot, no newline.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

#: Set by `localize_batch` around the manifests it runs in its own process: they tell the batch's
#: progress and summary how they did instead of writing their own.
BATCH_REPORT: ContextVar[BatchReport | None] = ContextVar("lipsync_batch_report", default=None)


class QualityRejected(RuntimeError):
    """A run whose outputs failed their checks (policy `fail`), or that a reviewer rejected."""


class LocalizeResult(RunOutcome):
    """What `localize_video` made: one entry per language."""


class QualityApproval(RunInput):
    """A reviewer's decision on outputs with findings."""

    approved: bool = Field(description="Approve the held outputs for delivery despite the findings.")
    reviewer: str = Field(default="", description="Who decided.")
    comment: str = Field(default="", description="Why.")


@flow(name="localize-video", description="One manifest -> one lip-synced, checked video per language.")
async def localize_video(
    manifest: str,
    out_dir: str = "lipsync-output",
    languages: list[str] | None = None,
    credentials: RunwareCredentials | None = None,
    credentials_block: str | None = None,
    settings: LipsyncSettings | None = None,
    base_url: str | None = None,
    allow_emulator: bool = True,
    quality_policy: QualityPolicy = "fail",
    approval_timeout_s: int = 3600,
    rerun_nonce: str | None = None,
) -> LocalizeResult:
    """Plan, check, submit, wait for, download, check and deliver every language of one manifest.

    Args:
        manifest: Path of the manifest (YAML or JSON, version 1).
        out_dir: Folder (or `s3://bucket/prefix`) for the outputs; each manifest gets a sub-folder named after it.
        languages: Only these languages of the manifest (all when empty).
        credentials: Runware credentials; without them RUNWARE_API_KEY is used, else the local emulator.
        credentials_block: The name of a saved RunwareCredentials block, instead of `credentials`.
        settings: Shared defaults (output format, safety, concurrency, prices, quality thresholds).
        base_url: Another Runware endpoint, such as an emulator started with `prefect-lipsync emulator`.
        allow_emulator: Without any key, run on the local emulator (dub previews); false makes such a run fail.
        quality_policy: `fail` fails the run on a failed check, `warn` delivers and reports, `ask` holds
            failed outputs until a person approves (delivered) or rejects (kept in quarantine).
        approval_timeout_s: With `ask`: how long to wait for a decision before rejecting.
        rerun_nonce: Set to re-run (and pay for) jobs already done once; leave empty to resume instead.
    """
    options = RunOptions.of(locals())
    destination = Destination.of(out_dir)
    result = await localize_manifest(Path(manifest), destination, languages, options)
    return await apply_quality_policy(result, options, out_root=destination)


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
    stem = _manifest_run_name(manifest, "")[1:]
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
    source = source_of(jobs[0].request) or str(jobs[0].request.to_wire()["inputs"]["video"])
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


async def apply_quality_policy(
    result: LocalizeResult, options: RunOptions, *, out_root: Destination
) -> LocalizeResult:
    """`fail`: a failed check fails the run; `warn`: it completes; `ask`: a person decides on held outputs."""
    logger = get_run_logger()
    errors = [o for o in result.outputs if o.error]
    if errors:
        raise QualityRejected(
            f"{len(errors)} of {len(result.outputs)} languages did not produce an output: "
            + "; ".join(f"{o.language}: {o.error}" for o in errors)
        )
    failed = [o for o in result.outputs if o.verdict == "fail"]
    if not failed:
        return result
    findings = quality_findings_markdown(failing_checks(failed))
    if options.quality_policy == "warn":
        logger.warning("Quality checks failed (policy warn, delivered anyway):\n%s", findings)
        return result
    held = [o for o in failed if o.held]
    if options.quality_policy == "fail" or not held:
        raise QualityRejected(
            f"Quality checks failed for {', '.join(o.language for o in failed)}:\n{findings}"
        )
    timeout_s = options.approval_timeout_s
    logger.warning("Quality checks failed; waiting up to %s s for a reviewer:\n%s", timeout_s, findings)
    try:
        decision = await apause_flow_run(
            wait_for_input=QualityApproval.with_initial_data(
                description=(
                    f"## Quality findings\n\n{findings}\n\nApprove to deliver the held outputs anyway (they move "
                    "from quarantine to their delivery names); reject to keep them in quarantine."
                ),
                approved=False,
            ),
            timeout=timeout_s,
            poll_interval=2,
        )
    except FlowPauseTimeout as exc:  # nobody decided in time: that is a rejection
        logger.error("No reviewer decision within %s s: outputs rejected.", timeout_s)
        for output in held:
            _record(
                output,
                out_root.child(result.name),
                approved=False,
                reviewer="",
                comment=f"no decision within {timeout_s} s",
            )
        raise QualityRejected(f"No reviewer decision within {timeout_s} s: outputs rejected.") from exc
    reviewer = decision.reviewer or "a reviewer"
    out_dir = out_root.child(result.name)
    for output in held:
        _record(output, out_dir, approved=decision.approved, reviewer=reviewer, comment=decision.comment)
    out_dir.write_text("result.json", result.model_dump_json(indent=2))
    if not decision.approved:
        raise QualityRejected(f"Rejected by {reviewer}: {decision.comment or 'no comment'}")
    logger.info("Approved by %s: %s", reviewer, decision.comment)
    return result


def _record(
    output: LanguageOutput, out_dir: Destination, *, approved: bool, reviewer: str, comment: str
) -> None:
    """Carry out a reviewer's decision on one held output, and say so in its report."""
    assert output.quarantined_to is not None
    held = out_dir.local_of(output.quarantined_to)
    if not approved:
        record_rejection(held, reviewer=reviewer, comment=comment)
        out_dir.publish([report_path_of(held)])
        output.held = False
        return
    assert output.output_name is not None
    delivered, report = release_held(
        held,
        out_dir=out_dir.local,
        name=output.output_name,
        reviewer=reviewer,
        comment=comment,
        ref=out_dir.ref,
    )
    pictures = [
        delivered.parent / Path(p).name.replace(held.stem, delivered.stem, 1) for p in output.pictures
    ]
    # Published like any delivery (the video last), then the quarantined copies are gone.
    out_dir.publish([*pictures, report])
    out_dir.publish([delivered], keep_local=False)
    out_dir.drop_quarantined(output.quarantined_to, output.pictures)
    output.output, output.report, output.quarantined_to, output.held = (
        out_dir.ref(delivered),
        out_dir.ref(report),
        None,
        False,
    )
    output.pictures = [out_dir.ref(p) for p in pictures]


# --------------------------------------------------------------------------- batch


class BatchResult(BaseModel):
    """What `localize_batch` did with each manifest of the folder."""

    done: list[str] = Field(default_factory=list, description="Manifests finished in this run.")
    skipped: list[str] = Field(default_factory=list, description="Manifests already done before this run.")
    failed: dict[str, str] = Field(default_factory=dict, description="Manifest -> why it failed.")


def _manifest_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _done_marker(manifest: Path) -> str:
    """The done marker's name, relative to the batch's out_dir."""
    return f".done/{hashlib.sha256(str(manifest).encode()).hexdigest()[:16]}.json"


def is_done(out_root: Destination, manifest: Path) -> bool:
    """A manifest is done when a marker of this exact manifest content says so."""
    try:
        marker = out_root.read_text(_done_marker(manifest))
        return marker is not None and bool(json.loads(marker)["digest"] == _manifest_digest(manifest))
    except (ValueError, KeyError, TypeError):
        return False


@flow(
    name="localize-batch", description="Every manifest of a folder not yet done, under a concurrency limit."
)
async def localize_batch(
    folder: str,
    out_dir: str = "lipsync-output",
    pattern: str = "*.yaml",
    max_concurrent_manifests: Annotated[int, Field(ge=1, le=32)] = 2,
    manifest_deployment: str | None = None,
    credentials: RunwareCredentials | None = None,
    credentials_block: str | None = None,
    settings: LipsyncSettings | None = None,
    base_url: str | None = None,
    allow_emulator: bool = True,
    quality_policy: Literal["fail", "warn"] = "fail",
    rerun_nonce: str | None = None,
) -> BatchResult:
    """Localize every manifest in `folder` that has not been done yet (the nightly job).

    Args:
        folder: Folder holding manifests; searched with `pattern`, sub-folders included.
        out_dir: Folder (or `s3://bucket/prefix`) for the outputs, one sub-folder per manifest.
        pattern: Glob of manifest files, e.g. `*.yaml` or `**/manifest.json`.
        max_concurrent_manifests: Manifests processed at once.
        manifest_deployment: Run each manifest as a flow run of this deployment (e.g.
            `localize-video/localize-manifest`), so every worker of its pool takes manifests; empty: all
            in this flow run. Credentials then go by `credentials_block` (or RUNWARE_API_KEY on the workers).
        credentials: Runware credentials; without them RUNWARE_API_KEY is used, else the local emulator.
        credentials_block: The name of a saved RunwareCredentials block, instead of `credentials`.
        settings: Shared defaults for every manifest.
        base_url: Another Runware endpoint, such as an emulator started with `prefect-lipsync emulator`.
        allow_emulator: Without any key, run on the local emulator (dub previews); false makes such a run fail.
        quality_policy: `fail` counts a manifest with a failed check as failed; `warn` only reports.
        rerun_nonce: Set to re-run (and pay for) jobs already done once; leave empty to resume instead.
    """
    options = RunOptions.of(locals(), not_applicable=("approval_timeout_s",))
    logger = get_run_logger()
    out_root = Destination.of(out_dir)
    manifests = sorted(
        p.resolve() for p in Path(folder).glob(pattern if "**" in pattern else f"**/{pattern}")
    )
    result = BatchResult()
    pending: list[Path] = []
    for manifest in manifests:
        if is_done(out_root, manifest):
            result.skipped.append(str(manifest))
        else:
            pending.append(manifest)
    logger.info("%d manifests: %d to do, %d already done", len(manifests), len(pending), len(result.skipped))
    if not pending:
        return _batch_done(result)
    pending = _refuse_duplicate_names(pending, result)
    if manifest_deployment:
        _check_fan_out(options)
    else:
        _refuse_beyond_the_temporary_server(pending)
    limit = asyncio.Semaphore(max_concurrent_manifests)
    async with (
        runware_endpoint(
            options.credentials,
            options.credentials_block,
            options.base_url,
            allow_emulator=options.allow_emulator,
        ) as endpoint,
        reports_in_background(),
    ):
        if endpoint.offline:
            logger.warning(OFFLINE_NOTICE)

        async def in_process(manifest: Path) -> tuple[bool, str]:
            # A manifest's run that crashed is started again: its journal resumes it without
            # uploading or paying twice.
            named = localize_manifest_task.with_options(task_run_name=_manifest_run_name(manifest))
            for _attempt in range(CHILD_CRASH_RERUNS + 1):
                # Called from async code, an async task returns a coroutine of its state (Prefect types
                # it as the state itself).
                running = cast(
                    "Awaitable[State[LocalizeResult]]",
                    named(
                        str(manifest),
                        out_root.where,
                        endpoint.credentials,  # resolved once: every manifest goes to the same endpoint
                        endpoint.offline,
                        options.settings,
                        options.quality_policy,
                        options.rerun_nonce,
                        return_state=True,
                    ),
                )
                state = await running
                if not state.is_crashed():
                    break
                logger.warning("%s: its run crashed (%s); running it again", manifest, state.message)
            return state.is_completed(), str(state.message or state.name)

        async def on_a_worker(manifest: Path) -> tuple[bool, str]:
            assert manifest_deployment is not None
            parameters = _child_parameters(manifest, out_root, options, endpoint)
            return await run_manifest_deployment(manifest_deployment, parameters)

        run = on_a_worker if manifest_deployment else in_process
        report = await _batch_report(folder, len(pending), offline=endpoint.offline)
        statuses = {str(m): "not started" for m in pending}

        async def one(manifest: Path) -> None:
            async with limit:
                completed, message = await run(manifest)
            statuses[str(manifest)] = "done" if completed else f"failed: {message}"[:300]
            if report.manifest_done(str(manifest), "done" if completed else "failed"):
                await best_effort(report.progress.flush, "the batch's progress")
            if completed and endpoint.offline:
                # Dub previews are not the real thing: the manifest stays to do for a run with a key.
                result.done.append(str(manifest))
            elif completed:
                out_root.write_text(
                    _done_marker(manifest),
                    json.dumps({"manifest": str(manifest), "digest": _manifest_digest(manifest)}),
                )
                result.done.append(str(manifest))
            else:
                result.failed[str(manifest)] = message

        # Manifests run here report to the batch; those on workers have their own artifacts.
        token = BATCH_REPORT.set(None if manifest_deployment else report)
        try:
            await asyncio.gather(*(one(m) for m in pending))
        finally:
            BATCH_REPORT.reset(token)
            await best_effort(lambda: report.publish(statuses), "the batch's summary")
    return _batch_done(result)


def _manifest_run_name(manifest: Path, verb: str = "localize") -> str:
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


async def _batch_report(folder: str, manifests: int, *, offline: bool) -> BatchReport:
    """The batch's progress bar (over manifests) and summary, keyed by its folder's name."""
    slug = artifact_key(Path(folder).resolve().name) or "batch"
    try:
        progress = await with_api_retries(
            lambda: create_progress(slug, manifests, kind="lipsync-batch-progress", unit="manifests"),
            attempts=3,
        )
    except PREFECT_API_ERRORS:
        progress = Progress(None, manifests, unit="manifests")
    return BatchReport(slug, progress, offline=offline)


#: Seconds between two looks at a manifest's flow run on a worker.
CHILD_POLL_S = 3.0
#: A manifest whose flow run crashed (its worker died) is run once more: its journal resumes it.
CHILD_CRASH_RERUNS = 1


def _check_fan_out(options: RunOptions) -> None:
    """Fan-out needs a server every worker reaches, and credentials a worker can load by name."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise QualityRejected(
            "manifest_deployment needs a Prefect server that every worker reaches: set PREFECT_API_URL "
            "(README: Running it for a team). Nothing was uploaded or submitted."
        )
    if options.credentials is not None and not options.credentials._block_document_name:
        raise QualityRejected(
            "manifest_deployment passes credentials to the workers by name: save the RunwareCredentials block "
            "and give credentials_block (or set RUNWARE_API_KEY on the workers). Nothing was submitted."
        )


def _child_parameters(
    manifest: Path, out_root: Destination, options: RunOptions, endpoint: Endpoint
) -> dict[str, Any]:
    """The localize_video parameters of one manifest's flow run on a worker: names, never secrets."""
    block = options.credentials_block or (
        options.credentials._block_document_name if options.credentials else None
    )
    parameters: dict[str, Any] = {
        "manifest": str(manifest),
        "out_dir": out_root.where,
        "credentials_block": block,
        "base_url": endpoint.base_url if endpoint.offline else options.base_url,
        "allow_emulator": options.allow_emulator,
        "quality_policy": options.quality_policy,
        "rerun_nonce": options.rerun_nonce,
    }
    if options.settings is not None:
        parameters["settings"] = options.settings.model_dump(
            mode="json", include={*RunOptions.settings_fields()}
        )
    return parameters


async def run_manifest_deployment(deployment: str, parameters: dict[str, Any]) -> tuple[bool, str]:
    """One manifest as a flow run of `deployment` (any worker of its pool); wait for its end.

    A run that crashed (its worker died) is started once more: the shared journal makes the new run
    resume what was paid for, without uploading or paying again.
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments.flow_runs import arun_deployment

    logger = get_run_logger()
    for attempt in range(CHILD_CRASH_RERUNS + 1):
        child = await arun_deployment(deployment, parameters=parameters, timeout=0, as_subflow=True)
        async with get_client() as client:
            while True:
                run = await client.read_flow_run(child.id)
                if run.state is not None and run.state.is_final():
                    break
                await asyncio.sleep(CHILD_POLL_S)
        state = run.state
        assert state is not None
        if state.is_completed():
            return True, "completed"
        if state.is_crashed() and attempt < CHILD_CRASH_RERUNS:
            logger.warning(
                "%s: its flow run %s crashed (%s); running it again",
                parameters["manifest"],
                run.name,
                state.message,
            )
            continue
        return False, f"flow run {run.name}: {state.name}: {state.message or ''}".strip()
    raise AssertionError("unreachable")  # pragma: no cover


#: Jobs one batch may run on Prefect's temporary SQLite server (no PREFECT_API_URL). 100 are run there in
#: CI (tests/prefect/test_prefect_batch_scale.py) and 500 in bench_batch.py (all done, 1.16x the core
#: alone); more was never measured there, so past 500 a team's server (PostgreSQL) is the place.
TEMPORARY_SERVER_MAX_JOBS = 500
TEMPORARY_SERVER_MAX_JOBS_ENV = "PREFECT_LIPSYNC_TEMPORARY_SERVER_MAX_JOBS"


def _refuse_beyond_the_temporary_server(manifests: list[Path]) -> None:
    """Refuse, before anything is paid, a batch larger than Prefect's temporary server is known to hold."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    limit = int(os.environ.get(TEMPORARY_SERVER_MAX_JOBS_ENV) or TEMPORARY_SERVER_MAX_JOBS)
    jobs = 0
    for manifest in manifests:
        loaded, _ = read_manifest(manifest)
        jobs += len(loaded.manifest.languages) if loaded is not None else 0
    if jobs > limit:
        raise QualityRejected(
            f"This batch has {jobs} jobs, more than the {limit} that Prefect's temporary "
            "server (SQLite, started because PREFECT_API_URL is not set) is known to hold; nothing was uploaded "
            "or submitted. Run a Prefect server on PostgreSQL and set PREFECT_API_URL (README: Running it for a "
            "team), or split the inbox."
        )


def _output_name(manifest: Path) -> str | None:
    """The folder a manifest's outputs go to, or None if it cannot be read (its own run says why)."""
    loaded, _ = read_manifest(manifest)
    if loaded is None:
        return None
    return output_stem(loaded.resolve(loaded.manifest.video), loaded.manifest.name)


def _refuse_duplicate_names(manifests: list[Path], result: BatchResult) -> list[Path]:
    """Manifests whose outputs would land in the same folder are refused instead of overwriting each other."""
    by_name: dict[str, list[Path]] = {}
    for manifest in manifests:
        by_name.setdefault(_output_name(manifest) or f"unreadable:{manifest}", []).append(manifest)
    keep = []
    for name, group in by_name.items():
        if len(group) == 1:
            keep.extend(group)
            continue
        for manifest in group:
            result.failed[str(manifest)] = (
                f"{len(group)} manifests write to the output folder {name!r} "
                f"({', '.join(str(m) for m in group)}): give each a distinct `name:`"
            )
    return keep


def _batch_done(result: BatchResult) -> BatchResult:
    if result.failed:
        raise QualityRejected(
            f"{len(result.failed)} manifests failed: "
            + "; ".join(f"{k}: {v}" for k, v in result.failed.items())
        )
    return result


# --------------------------------------------------------------------------- one video


class SegmentInput(BaseModel):
    """One stretch of the video and the audio that plays there."""

    start: float = Field(ge=0, description="Start in the video, seconds.")
    end: float = Field(gt=0, description="End in the video, seconds.")
    audio: str = Field(description="Audio file (path or URL) for this stretch.")
    audio_start: float | None = Field(default=None, ge=0, description="Start within the audio file, seconds.")
    audio_end: float | None = Field(default=None, gt=0, description="End within the audio file, seconds.")


class SpeechInput(BaseModel):
    """Text the service speaks (TTS) over the whole video."""

    text: str = Field(min_length=1, max_length=5000, description="What to say.")
    voice: str = Field(default="auto", description="Voice identifier; `auto` lets the service choose.")


@flow(name="lipsync-video", description="One video with one audio track, speech, or a list of segments.")
async def lipsync_video(
    video: str,
    audio: str | None = None,
    speech: SpeechInput | None = None,
    segments: list[SegmentInput] | None = None,
    out_dir: str = "lipsync-output",
    name: Annotated[str, Field(pattern=SAFE_NAME)] = "lipsync",
    language: Annotated[str, Field(pattern=SAFE_NAME)] = "dub",
    sync_mode: Literal["bounce", "cut_off", "silence", "remap"] = "cut_off",
    credentials: RunwareCredentials | None = None,
    credentials_block: str | None = None,
    settings: LipsyncSettings | None = None,
    base_url: str | None = None,
    allow_emulator: bool = True,
    quality_policy: QualityPolicy = "fail",
    approval_timeout_s: int = 3600,
    rerun_nonce: str | None = None,
) -> LanguageOutput:
    """Lip-sync one video to exactly one of: an audio track, speech text, or a list of segments.

    Args:
        video: The source video (path or URL).
        audio: A dub track for the whole video.
        speech: Text for the service to speak over the whole video.
        segments: Stretches of the video, each with its own audio file.
        out_dir: Folder (or `s3://bucket/prefix`) for the output; it gets a sub-folder named `name`.
        name: Used in the output's file name: letters, digits, `.`, `_` and `-`.
        language: Used in the output's file name: letters, digits, `.`, `_` and `-`.
        sync_mode: What the service does when audio and video lengths differ.
        credentials: Runware credentials; without them RUNWARE_API_KEY is used, else the local emulator.
        credentials_block: The name of a saved RunwareCredentials block, instead of `credentials`.
        settings: Shared defaults (output format, safety, prices, quality thresholds).
        base_url: Another Runware endpoint, such as an emulator started with `prefect-lipsync emulator`.
        allow_emulator: Without any key, run on the local emulator (dub previews); false makes such a run fail.
        quality_policy: `fail` fails the run on a failed check, `warn` only reports, `ask` pauses for a person.
        approval_timeout_s: With `ask`: how long to wait for a decision before rejecting.
        rerun_nonce: Set to re-run (and pay for) a job already done once; leave empty to resume instead.
    """
    options = RunOptions.of(locals())
    given = [k for k, v in (("audio", audio), ("speech", speech), ("segments", segments)) if v]
    if len(given) != 1:
        raise ValueError(f"give exactly one of audio, speech, segments (got {', '.join(given) or 'none'})")
    out_root = Destination.of(out_dir)
    manifest = _write_single_manifest(
        out_root.child(name).local / f"{name}.manifest.yaml",
        video=video,
        name=name,
        language=language,
        sync_mode=sync_mode,
        audio=audio,
        speech=speech,
        segments=segments,
    )
    result = await localize_manifest(manifest, out_root, None, options)
    result = await apply_quality_policy(result, options, out_root=out_root)
    return result.outputs[0]


def _absolute(ref: str) -> str:
    return ref if "://" in ref else str(Path(ref).expanduser().resolve())


def _write_single_manifest(
    path: Path,
    *,
    video: str,
    name: str,
    language: str,
    sync_mode: str,
    audio: str | None,
    speech: SpeechInput | None,
    segments: list[SegmentInput] | None,
) -> Path:
    """The one-video request as a manifest (kept next to the output as a record of what ran)."""
    import yaml

    spec: dict[str, Any]
    if audio:
        spec = {"audio": _absolute(audio)}
    elif speech:
        spec = {"speech": speech.model_dump()}
    else:
        lines = []
        for i, seg in enumerate(segments or [], start=1):
            line: dict[str, Any] = {
                "id": f"s{i:03d}",
                "start": seg.start,
                "end": seg.end,
                "audio": _absolute(seg.audio),
            }
            if seg.audio_start is not None:
                line["audio_start"] = seg.audio_start
            if seg.audio_end is not None:
                line["audio_end"] = seg.audio_end
            lines.append(line)
        spec = {"lines": lines}
    document = {
        "version": 1,
        "name": name,
        "video": _absolute(video),
        "defaults": {"sync_mode": sync_mode},
        "languages": {language: spec},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return path
