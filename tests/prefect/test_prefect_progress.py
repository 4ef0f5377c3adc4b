"""A progress bar is written when it moves enough to matter: at most every PROGRESS_EVERY_S, and
always at its last step (or a flush), read back from the test server's API."""

from __future__ import annotations

from typing import Any

import httpx
from prefect import flow
from prefect.settings import PREFECT_API_URL

from prefect_lipsync.tasks.report import create_progress


def read_progress(key: str) -> dict[str, Any]:
    body = {"limit": 1, "offset": 0, "sort": "CREATED_DESC", "artifacts": {"key": {"any_": [key]}}}
    answer = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    answer.raise_for_status()
    (artifact,) = answer.json()
    return dict(artifact)


@flow
async def advance(steps: int, total: int, *, every_s: float, flush: bool) -> None:
    progress = await create_progress("coalesced", total)
    progress.every_s = every_s
    for i in range(steps):
        await progress.advance(f"step {i + 1}")
    if flush:
        await progress.flush()


async def test_steps_between_writes_are_coalesced_and_the_last_one_is_always_written() -> None:
    await advance(3, 5, every_s=3600, flush=False)
    assert read_progress("lipsync-progress-coalesced")["data"] == 0.0  # three steps, no write yet

    await advance(5, 5, every_s=3600, flush=False)
    written = read_progress("lipsync-progress-coalesced")
    assert written["data"] == 100.0 and written["description"] == "5/5 jobs done; last: step 5"


async def test_a_flush_writes_a_bar_that_moved_and_every_step_is_written_when_the_interval_is_zero() -> None:
    await advance(2, 5, every_s=3600, flush=True)
    assert read_progress("lipsync-progress-coalesced")["data"] == 40.0

    await advance(1, 4, every_s=0, flush=False)
    assert read_progress("lipsync-progress-coalesced")["data"] == 25.0
