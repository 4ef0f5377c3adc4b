"""`localize-batch`: every manifest of a folder not done yet (the nightly job).

Manifests run in this process as task runs (`localize-manifest`, their steps' task runs inside), not
as subflow runs: a task run costs the Prefect API no request (its states travel as events), where a
subflow run cost seven, and on Prefect's temporary SQLite server those writes failed one another (503)
into the client's backoff of up to 62 s (bench_batch.py). With `chunk_deployment`, the manifests are
shared out in a few chunks, each a flow run of that (`localize-manifests`) deployment on any worker of
its pool, its manifests task runs there (flows/fanout.py). With `manifest_deployment`, each manifest is
a flow run of that deployment: a process per manifest (kept for deployments whose flow takes one)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as this_flow_run
from pydantic import BaseModel, Field

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.blocks.settings import LipsyncSettings
from prefect_lipsync.flows.chunk import (
    ManifestOutcome,
    done_marker,
    is_done,
    manifest_digest,
    manifests_session,
    mark_done,
    run_manifest_here,
)
from prefect_lipsync.flows.fanout import chunk_count, run_in_chunks
from prefect_lipsync.flows.manifest import BATCH_REPORT
from prefect_lipsync.flows.options import RunOptions
from prefect_lipsync.flows.review import QualityRejected
from prefect_lipsync.manifest import read_manifest
from prefect_lipsync.manifest.output_names import output_stem
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.tasks.endpoint import Endpoint
from prefect_lipsync.tasks.resilience import best_effort

__all__ = ["BatchResult", "is_done", "localize_batch", "run_manifest_deployment"]

# Earlier names of the done marker's helpers (now in flows/chunk.py, shared with the chunks).
_manifest_digest = manifest_digest
_done_marker = done_marker


# --------------------------------------------------------------------------- batch


class BatchResult(BaseModel):
    """What `localize_batch` did with each manifest of the folder."""

    done: list[str] = Field(default_factory=list, description="Manifests finished in this run.")
    skipped: list[str] = Field(default_factory=list, description="Manifests already done before this run.")
    failed: dict[str, str] = Field(default_factory=dict, description="Manifest -> why it failed.")


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
    chunk_deployment: str | None = None,
    chunks: Annotated[int | None, Field(ge=1, le=1000)] = None,
) -> BatchResult:
    """Localize every manifest in `folder` that has not been done yet (the nightly job).

    Args:
        folder: Folder holding manifests; searched with `pattern`, sub-folders included.
        out_dir: Folder (or `s3://bucket/prefix`) for the outputs, one sub-folder per manifest.
        pattern: Glob of manifest files, e.g. `*.yaml` or `**/manifest.json`.
        max_concurrent_manifests: Manifests processed at once (fanned out: over all workers together).
        manifest_deployment: Run each manifest as a flow run of this deployment (e.g.
            `localize-video/localize-manifest`): a process per manifest on any worker of its pool;
            `chunk_deployment` does the same work with a process per chunk. Empty: all in this flow run.
            Credentials then go by `credentials_block` (or RUNWARE_API_KEY on the workers).
        credentials: Runware credentials; without them RUNWARE_API_KEY is used, else the local emulator.
        credentials_block: The name of a saved RunwareCredentials block, instead of `credentials`.
        settings: Shared defaults for every manifest.
        base_url: Another Runware endpoint, such as an emulator started with `prefect-lipsync emulator`.
        allow_emulator: Without any key, run on the local emulator (dub previews); false makes such a run fail.
        quality_policy: `fail` counts a manifest with a failed check as failed; `warn` only reports.
        rerun_nonce: Set to re-run (and pay for) jobs already done once; leave empty to resume instead.
        chunk_deployment: Share the manifests out in chunks, each a flow run of this deployment (e.g.
            `localize-manifests/localize-manifests`) on any worker of its pool, each manifest a task run
            there. Credentials then go by `credentials_block` (or RUNWARE_API_KEY on the workers).
        chunks: With `chunk_deployment`: how many chunks; empty: two per online worker of its pool.
    """
    options = RunOptions.of(locals(), not_applicable=("approval_timeout_s",))
    logger = get_run_logger()
    if manifest_deployment and chunk_deployment:
        raise QualityRejected(
            "Give chunk_deployment or manifest_deployment, not both: chunk_deployment runs the manifests in a "
            "few flow runs (one process each), manifest_deployment one flow run per manifest. Nothing was submitted."
        )
    fan_out = chunk_deployment or manifest_deployment
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
    if fan_out:
        _check_fan_out(options)
    else:
        _refuse_beyond_the_temporary_server(pending)
    limit = asyncio.Semaphore(max_concurrent_manifests)
    async with manifests_session(options, Path(folder).resolve().name, len(pending)) as (endpoint, report):
        statuses = {str(m): "not started" for m in pending}

        async def finish(manifest: Path, outcome: ManifestOutcome) -> None:
            completed, message = outcome.completed, outcome.message
            if outcome.outcome is not None:
                report.record(outcome.outcome)
            statuses[str(manifest)] = "done" if completed else f"failed: {message}"[:300]
            if report.manifest_done(str(manifest), "done" if completed else "failed"):
                await best_effort(report.progress.flush, "the batch's progress")
            if completed and not endpoint.offline and not outcome.marked_done:
                # Dub previews are not the real thing: the manifest stays to do for a run with a key.
                await asyncio.to_thread(mark_done, out_root, manifest)
            if completed:
                result.done.append(str(manifest))
            else:
                result.failed[str(manifest)] = message

        async def one(manifest: Path) -> None:
            async with limit:
                if manifest_deployment:
                    parameters = _child_parameters(manifest, out_root, options, endpoint)
                    completed, message = await run_manifest_deployment(manifest_deployment, parameters)
                else:
                    completed, message = await run_manifest_here(manifest, out_root, endpoint, options)
            await finish(manifest, ManifestOutcome(completed=completed, message=message))

        # Manifests run here report to the batch; those on workers report to their chunk or their own run.
        token = BATCH_REPORT.set(None if fan_out else report)
        try:
            if chunk_deployment and pending:
                count = await chunk_count(chunk_deployment, len(pending), chunks)
                logger.info("%d manifests in %d chunks of %s", len(pending), count, chunk_deployment)
                await run_in_chunks(
                    chunk_deployment,
                    pending,
                    chunks=count,
                    max_concurrent_manifests=max_concurrent_manifests,
                    parameters=_child_parameters(pending[0], out_root, options, endpoint),
                    out_root=out_root,
                    run_name=str(this_flow_run.get_name() or "localize-batch"),
                    on_outcome=finish,
                )
            else:
                await asyncio.gather(*(one(m) for m in pending))
        finally:
            BATCH_REPORT.reset(token)
            await best_effort(lambda: report.publish(statuses), "the batch's summary")
    return _batch_done(result)


#: Seconds between two looks at a manifest's flow run on a worker.
CHILD_POLL_S = 3.0
#: A manifest whose flow run crashed (its worker died) is run once more: its journal resumes it.
CHILD_CRASH_RERUNS = 1


def _check_fan_out(options: RunOptions) -> None:
    """Fan-out needs a server every worker reaches, and credentials a worker can load by name."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise QualityRejected(
            "Fan-out (chunk_deployment, manifest_deployment) needs a Prefect server that every worker reaches: set PREFECT_API_URL "
            "(README: Running it for a team). Nothing was uploaded or submitted."
        )
    if options.credentials is not None and not options.credentials._block_document_name:
        raise QualityRejected(
            "Fan-out passes credentials to the workers by name: save the RunwareCredentials block "
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
