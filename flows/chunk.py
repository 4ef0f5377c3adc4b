"""`localize-manifests`: a share (a chunk) of a fanned-out batch's manifests, in one flow run, so one
process on a worker: each manifest a task run (`localize-manifest`, as the batch runs them in its own
process), one endpoint, client and poller, and one analysis of a shared source for all of them.

What it did with each manifest goes, as each finishes, to an outcomes file under the batch's out_dir
(`.fanout/<outcomes_key>.json`, written whole and atomically), which the batch reads while it waits:
so the batch reports each manifest as it ends, and a chunk whose worker died is run again with only
the manifests it had not finished (they resume from the shared journal, paying nothing twice).
Also here: what a manifest run in this process and a done marker are, shared with the batch."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
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
from prefect_lipsync.pipeline import RunOutcome
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.tasks.endpoint import OFFLINE_NOTICE, Endpoint, runware_endpoint
from prefect_lipsync.tasks.report import BatchReport, Progress, artifact_key, create_progress
from prefect_lipsync.tasks.resilience import (
    PREFECT_API_ERRORS,
    best_effort,
    reports_in_background,
    with_api_retries,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from prefect.client.schemas.objects import State

#: A manifest's task run that crashed is run once more in the same process: its journal resumes it.
MANIFEST_CRASH_RERUNS = 1
#: Where the outcomes of a chunk go, under the batch's out_dir.
OUTCOMES_DIR = ".fanout"
#: Seconds between two beats of a running chunk in its outcomes file.
ALIVE_EVERY_S = 15.0
#: An outcomes key: letters, digits, `.`, `_` and `-` (it becomes a file name).
OUTCOMES_KEY = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


# --------------------------------------------------------------------------- done markers


def manifest_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def done_marker(manifest: Path) -> str:
    """The done marker's name, relative to the batch's out_dir."""
    return f".done/{hashlib.sha256(str(manifest).encode()).hexdigest()[:16]}.json"


def is_done(out_root: Destination, manifest: Path) -> bool:
    """A manifest is done when a marker of this exact manifest content says so."""
    try:
        marker = out_root.read_text(done_marker(manifest))
        return marker is not None and bool(json.loads(marker)["digest"] == manifest_digest(manifest))
    except (ValueError, KeyError, TypeError):
        return False


def mark_done(out_root: Destination, manifest: Path) -> None:
    """Write down that this content of `manifest` is done: a re-run of the batch skips it."""
    out_root.write_text(
        done_marker(manifest), json.dumps({"manifest": str(manifest), "digest": manifest_digest(manifest)})
    )


# --------------------------------------------------------------------------- one manifest here


async def run_manifest_here(
    manifest: Path, out_root: Destination, endpoint: Endpoint, options: RunOptions
) -> tuple[bool, str]:
    """One manifest as a task run of this flow run; (completed, why not). A run that crashed is started
    again: its journal resumes it without uploading or paying twice."""
    logger = get_run_logger()
    named = localize_manifest_task.with_options(task_run_name=manifest_run_name(manifest))
    for _attempt in range(MANIFEST_CRASH_RERUNS + 1):
        # Called from async code, an async task returns a coroutine of its state (Prefect types it as
        # the state itself).
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


async def batch_report(slug_of: str, manifests: int, *, offline: bool) -> BatchReport:
    """A batch's (or a chunk's) progress bar over its manifests and its summary, keyed by `slug_of`."""
    slug = artifact_key(slug_of) or "batch"
    try:
        progress = await with_api_retries(
            lambda: create_progress(slug, manifests, kind="lipsync-batch-progress", unit="manifests"),
            attempts=3,
        )
    except PREFECT_API_ERRORS:
        progress = Progress(None, manifests, unit="manifests")
    return BatchReport(slug, progress, offline=offline)


@contextlib.asynccontextmanager
async def manifests_session(
    options: RunOptions, report_name: str, manifests: int
) -> AsyncIterator[tuple[Endpoint, BatchReport]]:
    """What a batch and a chunk open once for all their manifests: one Runware endpoint (its client
    and poller), the reports written in the background, and the progress and summary over them."""
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
            get_run_logger().warning(OFFLINE_NOTICE)
        yield endpoint, await batch_report(report_name, manifests, offline=endpoint.offline)


# --------------------------------------------------------------------------- outcomes


class ManifestOutcome(BaseModel):
    """How one manifest of a chunk ended, as the batch reads it."""

    completed: bool = Field(description="Its run completed (outputs delivered, or reported with `warn`).")
    message: str = Field(default="", description="Why not, when it did not.")
    marked_done: bool = Field(default=False, description="Its done marker was written.")
    outcome: RunOutcome | None = Field(default=None, description="Its languages, verdicts and costs.")


class ChunkOutcomes(BaseModel):
    """The outcomes file of one chunk's flow run: manifest -> how it ended, as they end."""

    manifests: dict[str, ManifestOutcome] = Field(default_factory=dict)
    beats: int = Field(
        default=0,
        description=(
            "Counts up every ALIVE_EVERY_S while the chunk runs: the batch tells a chunk Prefect marked "
            "Crashed (its heartbeat events lost) that still works from one whose worker died."
        ),
    )


def outcomes_file(key: str) -> str:
    return f"{OUTCOMES_DIR}/{key}.json"


def read_outcomes(out_root: Destination, key: str) -> ChunkOutcomes:
    """What a chunk has written so far (nothing yet: empty)."""
    try:
        text = out_root.read_text(outcomes_file(key))
        return ChunkOutcomes.model_validate_json(text) if text else ChunkOutcomes()
    except ValueError:  # never half a file (written atomically), but never a reason to fail the batch
        return ChunkOutcomes()


class ChunkResult(BaseModel):
    """What `localize_manifests` did with each of its manifests."""

    done: list[str] = Field(default_factory=list, description="Manifests finished in this run.")
    skipped: list[str] = Field(default_factory=list, description="Manifests already done before this run.")
    failed: dict[str, str] = Field(default_factory=dict, description="Manifest -> why it failed.")


# --------------------------------------------------------------------------- the flow


@flow(
    name="localize-manifests",
    description="A chunk of a fanned-out batch: its manifests as task runs in one process on a worker.",
)
async def localize_manifests(
    manifests: list[str],
    out_dir: str = "lipsync-output",
    max_concurrent_manifests: Annotated[int, Field(ge=1, le=32)] = 2,
    credentials: RunwareCredentials | None = None,
    credentials_block: str | None = None,
    settings: LipsyncSettings | None = None,
    base_url: str | None = None,
    allow_emulator: bool = True,
    quality_policy: Literal["fail", "warn"] = "fail",
    rerun_nonce: str | None = None,
    outcomes_key: Annotated[str | None, Field(pattern=OUTCOMES_KEY)] = None,
) -> ChunkResult:
    """Localize these manifests in this flow run, each as its own task run (`localize_batch` with
    `chunk_deployment` starts this flow for each chunk of its manifests).

    Args:
        manifests: Paths of the manifests, as every worker sees them.
        out_dir: Folder (or `s3://bucket/prefix`) for the outputs, one sub-folder per manifest.
        max_concurrent_manifests: Manifests processed at once in this flow run.
        credentials: Runware credentials; without them RUNWARE_API_KEY is used, else the local emulator.
        credentials_block: The name of a saved RunwareCredentials block, instead of `credentials`.
        settings: Shared defaults for every manifest.
        base_url: Another Runware endpoint, such as an emulator started with `prefect-lipsync emulator`.
        allow_emulator: Without any key, run on the local emulator (dub previews); false makes such a run fail.
        quality_policy: `fail` counts a manifest with a failed check as failed; `warn` only reports.
        rerun_nonce: Set to re-run (and pay for) jobs already done once; leave empty to resume instead.
        outcomes_key: Write each manifest's outcome, as it ends, to `.fanout/<key>.json` under out_dir
            (the batch that started this run reads it); empty: no such file.
    """
    options = RunOptions.of(locals(), not_applicable=("approval_timeout_s",))
    logger = get_run_logger()
    out_root = Destination.of(out_dir)
    paths = [Path(m) for m in manifests]
    result = ChunkResult()
    outcomes = ChunkOutcomes()
    pending = []
    for manifest in paths:
        if is_done(out_root, manifest):
            result.skipped.append(str(manifest))
            outcomes.manifests[str(manifest)] = ManifestOutcome(completed=True, message="already done")
        else:
            pending.append(manifest)
    logger.info("%d manifests: %d to do, %d already done", len(paths), len(pending), len(result.skipped))
    writing = asyncio.Lock()

    async def write_outcomes() -> None:
        if outcomes_key is None:
            return
        async with writing:
            text = outcomes.model_dump_json()
            await asyncio.to_thread(out_root.write_text, outcomes_file(outcomes_key), text)

    await write_outcomes()
    limit = asyncio.Semaphore(max_concurrent_manifests)
    async with manifests_session(options, outcomes_key or "chunk", len(pending)) as (endpoint, report):
        statuses = {str(m): "not started" for m in pending}

        async def one(manifest: Path) -> None:
            async with limit:
                completed, message = await run_manifest_here(manifest, out_root, endpoint, options)
            marked = completed and not endpoint.offline  # dub previews stay to do for a run with a key
            if marked:
                await asyncio.to_thread(mark_done, out_root, manifest)
            statuses[str(manifest)] = "done" if completed else f"failed: {message}"[:300]
            if completed:
                result.done.append(str(manifest))
            else:
                result.failed[str(manifest)] = message
            outcomes.manifests[str(manifest)] = ManifestOutcome(
                completed=completed,
                message="" if completed else message,
                marked_done=marked,
                outcome=report.outcomes.get(str(manifest)),
            )
            await write_outcomes()
            if report.manifest_done(str(manifest), "done" if completed else "failed"):
                await best_effort(report.progress.flush, "the chunk's progress")

        async def beat() -> None:
            while True:
                await asyncio.sleep(ALIVE_EVERY_S)
                outcomes.beats += 1
                await best_effort(write_outcomes, "the chunk's beat")

        token = BATCH_REPORT.set(report)  # the manifests report to the chunk, not each its own bar
        beating = asyncio.create_task(beat())
        try:
            await asyncio.gather(*(one(m) for m in pending))
        finally:
            beating.cancel()
            BATCH_REPORT.reset(token)
            await best_effort(lambda: report.publish(statuses), "the chunk's summary")
    if result.failed:
        raise QualityRejected(
            f"{len(result.failed)} manifests failed: "
            + "; ".join(f"{k}: {v}" for k, v in result.failed.items())
        )
    return result


def chunk_parameters(
    base: dict[str, Any], manifests: list[Path], concurrency: int, key: str
) -> dict[str, Any]:
    """The `localize_manifests` parameters of one chunk: the batch's (names, never secrets) and its share."""
    parameters = {k: v for k, v in base.items() if k != "manifest"}
    parameters.update(
        manifests=[str(m) for m in manifests], max_concurrent_manifests=concurrency, outcomes_key=key
    )
    return parameters
