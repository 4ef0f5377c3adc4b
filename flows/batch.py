"""`localize-batch`: every manifest of a folder not done yet (the nightly job).

Manifests run in this process as task runs (`localize-manifest`, their steps' task runs inside), not
as subflow runs: a task run costs the Prefect API no request (its states travel as events), where a
subflow run cost seven, and on Prefect's temporary SQLite server those writes failed one another (503)
into the client's backoff of up to 62 s (bench_batch.py). With `manifest_deployment`, each manifest is
a flow run of that deployment on any worker of its pool."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.blocks.settings import LipsyncSettings
from prefect_lipsync.flows.manifest import (
    BATCH_REPORT,
    LocalizeResult,
    localize_manifest_task,
    manifest_run_name,
)
from prefect_lipsync.flows.options import RunOptions
from prefect_lipsync.flows.review import QualityRejected
from prefect_lipsync.manifest import read_manifest
from prefect_lipsync.manifest.output_names import output_stem
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.tasks.endpoint import OFFLINE_NOTICE, Endpoint, runware_endpoint
from prefect_lipsync.tasks.report import (
    BatchReport,
    Progress,
    artifact_key,
    create_progress,
)
from prefect_lipsync.tasks.resilience import (
    PREFECT_API_ERRORS,
    best_effort,
    reports_in_background,
    with_api_retries,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from prefect.client.schemas.objects import State


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
            named = localize_manifest_task.with_options(task_run_name=manifest_run_name(manifest))
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
