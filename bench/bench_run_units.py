"""What one unit of Prefect bookkeeping costs on the default setup: a task run against a subflow run.

    .venv/bin/python bench/bench_run_units.py            # 100 of each, 8 at once
    .venv/bin/python bench/bench_run_units.py --count 200 --at-once 16

In one process on Prefect's temporary SQLite server (no PREFECT_API_URL), a flow runs COUNT units,
AT_ONCE at a time, each doing nothing but `await asyncio.sleep(0.05)`:
  plain     a coroutine (the baseline: no Prefect bookkeeping)
  task      an async task run (NO_CACHE), as the batch runs each manifest and each job
  subflow   an async subflow run, as the batch ran each manifest before
and prints each one's wall time, the time per unit over the baseline, the Prefect API requests per
unit (HTTP; a task run's states travel as events over the one websocket) and how many of those
requests waited over a second (the client backing off a 503). The flows run in the order given,
after one warm-up flow, in the same process against the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections import Counter
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-run-units-"))

from prefect import flow, task  # after the environment above: Prefect reads it on import
from prefect.cache_policies import NO_CACHE
from prefect.client.base import PrefectHttpxAsyncClient
from prefect.client.orchestration import get_client

WORK_S = 0.05
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
requests: Counter[str] = Counter()
slow: Counter[str] = Counter()
_send = PrefectHttpxAsyncClient.send


async def _counted_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
    began = time.perf_counter()
    response = await _send(self, request, *args, **kwargs)
    route = f"{request.method} {_ID.sub('{id}', request.url.path)}"
    requests[route] += 1
    if time.perf_counter() - began > 1.0:
        slow[route] += 1
    return response


PrefectHttpxAsyncClient.send = _counted_send  # type: ignore[method-assign]


async def unit() -> None:
    await asyncio.sleep(WORK_S)


unit_task = task(name="unit-task", cache_policy=NO_CACHE)(unit)
unit_flow = flow(name="unit-subflow")(unit)


@flow(name="bench-run-units")
async def many(kind: str, count: int, at_once: int) -> None:
    limit = asyncio.Semaphore(at_once)
    call = {"plain": unit, "task": unit_task, "subflow": unit_flow}[kind]

    async def one() -> None:
        async with limit:
            await call()

    await asyncio.gather(*(one() for _ in range(count)))


async def measure(kind: str, count: int, at_once: int) -> dict[str, float]:
    requests.clear()
    slow.clear()
    started = time.perf_counter()
    await many(kind, count, at_once)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "requests": sum(requests.values()), "slow": sum(slow.values())}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--at-once", type=int, default=8)
    args = parser.parse_args()
    async with get_client() as client:  # the temporary server starts here, before any clock
        await client.hello()
    await measure("plain", 4, 4)  # warm-up: the flow itself, imports, the events websocket
    figures = {kind: await measure(kind, args.count, args.at_once) for kind in ("plain", "task", "subflow")}
    base = figures["plain"]
    print(
        f"\n{args.count} units of {WORK_S * 1000:.0f} ms each, {args.at_once} at once, temporary SQLite server\n"
    )
    print(
        "| unit | wall | per unit over plain | Prefect API requests (the flow's own included) | requests over 1 s |"
    )
    print("|---|---|---|---|---|")
    for kind, f in figures.items():
        extra_ms = 1000 * (f["wall_s"] - base["wall_s"]) / args.count
        extra = "baseline" if kind == "plain" else f"{extra_ms:+.1f} ms"
        print(f"| {kind} | {f['wall_s']:.2f} s | {extra} | {f['requests']:.0f} | {f['slow']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
