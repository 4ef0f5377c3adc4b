"""The batch's start gate: one subflow run is being created at a time; the next starts once the one
before says it is running, or is over (failed before it ran)."""

from __future__ import annotations

import asyncio

import pytest

from prefect_lipsync.flows.localize import RUN_STARTED, StartGate, _tell_the_batch_this_run_started


async def test_each_run_is_created_only_once_the_one_before_is_running() -> None:
    gate = StartGate()
    log: list[str] = []

    async def run(name: str) -> str:
        log.append(f"{name} creating")
        await asyncio.sleep(0.05)  # the subflow run being created on the server
        log.append(f"{name} running")
        _tell_the_batch_this_run_started()
        await asyncio.sleep(0.2)  # its jobs: the next run's creation overlaps these
        log.append(f"{name} done")
        return name

    names = await asyncio.gather(*(gate.start(lambda n=n: run(n)) for n in ("a", "b", "c")))
    assert names == ["a", "b", "c"]
    creating = [log.index(f"{n} creating") for n in "abc"]
    running = [log.index(f"{n} running") for n in "abc"]
    # b is created after a runs, c after b runs; and runs overlap (a is not done when b is created).
    assert running[0] < creating[1] < running[1] < creating[2]
    assert log.index("b creating") < log.index("a done")


async def test_a_run_that_fails_before_it_runs_opens_the_gate_and_raises_its_error() -> None:
    gate = StartGate()

    async def fails() -> str:
        raise RuntimeError("the API could not create the run")

    async def runs() -> str:
        _tell_the_batch_this_run_started()
        return "ok"

    first = asyncio.ensure_future(gate.start(fails))
    second = asyncio.ensure_future(gate.start(runs))
    with pytest.raises(RuntimeError, match="could not create"):
        await first
    assert await asyncio.wait_for(second, 5) == "ok"


async def test_outside_a_batch_telling_it_does_nothing() -> None:
    assert RUN_STARTED.get() is None
    _tell_the_batch_this_run_started()
