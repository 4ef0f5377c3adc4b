"""The batch's side of fan-out in chunks: split the pending manifests into a few chunks, start each as
a flow run of a `localize-manifests` deployment (any worker of its pool takes it), and while they run,
tell the batch each manifest's outcome as the chunk writes it. A chunk whose run crashed (its worker
died) is started once more with the manifests it had not finished: they resume from the shared
journal, so nothing is uploaded or paid twice.

Why chunks: a flow run on a process worker is a new Python process that imports Prefect and this
package, and plans, probes and analyses its source on its own. One per manifest made a fanned-out
batch of 20 manifests 2.7x slower than the same batch in one process (issue #26); a chunk pays that
once for many manifests."""

from __future__ import annotations

import asyncio
import functools
import math
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger

from prefect_lipsync.flows.chunk import ALIVE_EVERY_S, ManifestOutcome, chunk_parameters, read_outcomes
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.tasks.resilience import PREFECT_API_ERRORS, with_api_retries

#: Seconds between two looks at a chunk's flow run and its outcomes file.
CHUNK_POLL_S = 3.0
#: A chunk whose flow run crashed is run once more with what it had not finished.
CHUNK_CRASH_RERUNS = 1
#: A chunk marked Crashed whose outcomes file has not beaten for this long (seconds of the batch's
#: clock) is taken for dead; one that still beats is waited for.
BEATLESS_S = 4 * ALIVE_EVERY_S
#: Chunks per online worker of the deployment's pool when the batch is not told how many: two keep
#: both of a worker's slots busy with `--limit 2` and let a slower worker's share be small, at two
#: process starts per worker per batch.
CHUNKS_PER_WORKER = 2

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.schemas.objects import FlowRun

OnOutcome = Callable[[Path, ManifestOutcome], Awaitable[None]]


def plan_chunks(manifests: list[Path], count: int) -> list[list[Path]]:
    """`manifests` dealt round-robin into at most `count` non-empty chunks (neighbours, often alike in
    size, land in different chunks)."""
    count = max(1, min(count, len(manifests)))
    return [manifests[k::count] for k in range(count)]


def concurrency_per_chunk(max_concurrent_manifests: int, chunks: int) -> int:
    """A chunk's share of the batch's manifests-at-once, so that all chunks together keep to it."""
    return max(1, math.ceil(max_concurrent_manifests / max(chunks, 1)))


async def online_workers(deployment: str) -> int:
    """Workers of the deployment's pool that are online now (0 when it cannot be told)."""
    from prefect.client.orchestration import get_client

    try:
        async with get_client() as client:
            found = await with_api_retries(lambda: client.read_deployment_by_name(deployment), attempts=3)
            if not found.work_pool_name:
                return 0
            pool = found.work_pool_name
            workers = await with_api_retries(lambda: client.read_workers_for_work_pool(pool), attempts=3)
    except PREFECT_API_ERRORS:
        return 0
    return sum(1 for w in workers if str(getattr(w.status, "value", w.status)).upper() == "ONLINE")


async def chunk_count(deployment: str, manifests: int, chunks: int | None) -> int:
    """How many chunks: as asked, else CHUNKS_PER_WORKER per online worker (one worker if none is
    online yet); never more than there are manifests."""
    if chunks is None:
        chunks = CHUNKS_PER_WORKER * max(1, await online_workers(deployment))
    return max(1, min(chunks, manifests))


async def run_in_chunks(
    deployment: str,
    manifests: list[Path],
    *,
    chunks: int,
    max_concurrent_manifests: int,
    parameters: dict[str, Any],
    out_root: Destination,
    run_name: str,
    on_outcome: OnOutcome,
) -> None:
    """Run `manifests` as `chunks` flow runs of `deployment`; `on_outcome` hears of each manifest once."""
    groups = plan_chunks(manifests, chunks)
    per_chunk = concurrency_per_chunk(max_concurrent_manifests, len(groups))
    batch_key = uuid.uuid4().hex[:12]
    await asyncio.gather(
        *(
            _run_chunk(
                deployment,
                group,
                key=f"{batch_key}-{k}",
                name=f"{run_name}-chunk-{k}-of-{len(groups)}",
                parameters=lambda share, key: chunk_parameters(parameters, share, per_chunk, key),
                out_root=out_root,
                on_outcome=on_outcome,
            )
            for k, group in enumerate(groups, start=1)
        )
    )


async def _run_chunk(
    deployment: str,
    group: list[Path],
    *,
    key: str,
    name: str,
    parameters: Callable[[list[Path], str], dict[str, Any]],
    out_root: Destination,
    on_outcome: OnOutcome,
) -> None:
    from prefect.deployments.flow_runs import arun_deployment

    logger = get_run_logger()
    told: set[str] = set()

    async def tell(outcomes_key: str) -> None:
        found = await asyncio.to_thread(read_outcomes, out_root, outcomes_key)
        for manifest, outcome in found.manifests.items():
            if manifest not in told:
                told.add(manifest)
                await on_outcome(Path(manifest), outcome)

    remaining = list(group)
    for attempt in range(CHUNK_CRASH_RERUNS + 1):
        outcomes_key = f"{key}-{attempt}"
        child = await arun_deployment(
            deployment,
            parameters=parameters(remaining, outcomes_key),
            flow_run_name=name if attempt == 0 else f"{name}-again",
            timeout=0,
            as_subflow=True,
        )
        run = await _wait_for(child.id, functools.partial(tell, outcomes_key))
        state = run.state
        assert state is not None
        if state.is_crashed():
            # Marked Crashed when its heartbeat events stopped: its worker died, or only its events did
            # (a busy server). A chunk that still beats in its outcomes file is waited for, not doubled.
            await _while_it_beats(out_root, outcomes_key, remaining, tell, run.name)
        await tell(outcomes_key)  # what it wrote last, after its state was read
        remaining = [m for m in remaining if str(m) not in told]
        if not remaining:
            return
        if state.is_crashed() and attempt < CHUNK_CRASH_RERUNS:
            logger.warning(
                "%s crashed (%s) with %d of its %d manifests unfinished; running those again",
                run.name,
                state.message,
                len(remaining),
                len(group),
            )
            continue
        why = f"flow run {run.name}: {state.name}: {state.message or ''}".strip()
        for manifest in remaining:
            told.add(str(manifest))
            await on_outcome(manifest, ManifestOutcome(completed=False, message=why))
        return


async def _wait_for(run_id: UUID, each_look: Callable[[], Awaitable[None]]) -> FlowRun:
    """Look at a flow run every CHUNK_POLL_S (and do `each_look`) until it is in a final state."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        while True:
            run = await with_api_retries(lambda: client.read_flow_run(run_id))
            await each_look()
            if run.state is not None and run.state.is_final():
                return run
            await asyncio.sleep(CHUNK_POLL_S)


async def _while_it_beats(
    out_root: Destination,
    outcomes_key: str,
    manifests: list[Path],
    tell: Callable[[str], Awaitable[None]],
    name: str,
) -> None:
    """Wait while a chunk Prefect marked Crashed still beats in its outcomes file and has manifests to
    finish; return once it ends them all, or stops beating for BEATLESS_S."""
    logger = get_run_logger()
    loop = asyncio.get_running_loop()
    beats, since = read_outcomes(out_root, outcomes_key).beats, loop.time()
    warned = False
    while loop.time() - since < BEATLESS_S:
        await tell(outcomes_key)
        found = await asyncio.to_thread(read_outcomes, out_root, outcomes_key)
        if all(str(m) in found.manifests for m in manifests):
            return
        if found.beats != beats:
            beats, since = found.beats, loop.time()
            if not warned:
                logger.warning("%s was marked Crashed but still works on its manifests: waiting for it", name)
                warned = True
        await asyncio.sleep(CHUNK_POLL_S)
