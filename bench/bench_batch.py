"""The nightly batch at scale: N two-language manifests through `localize_batch` on the default setup
(no Prefect server configured: Prefect's temporary SQLite server), against the same jobs run by the
core alone (JobRunner, no Prefect) in the same run, against the same emulator (latency 5 s).

    .venv/bin/python bench/bench_batch.py                 # N = 10, 50, 250
    .venv/bin/python bench/bench_batch.py --sizes 10 50

Each measurement runs in a fresh child process with a fresh cache (and Prefect home), and a
rerun_nonce of its own, so nothing is resumed: every job is submitted, waited for, downloaded and
checked. Prints wall time, the ratio Prefect/core, Prefect API requests (HTTP; task-run states travel
as events over one websocket) and the peak memory of the flow's process. Prefect logs at its default
level (INFO), as a user's run does: each job's steps are log lines sent to the API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

MAX_CONCURRENT_MANIFESTS = 32
PER_MANIFEST_CONCURRENCY = 4
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _descendants(pid: int) -> list[int]:
    """Live descendants of `pid`, read from /proc (the temporary Prefect server is one)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child_pid in children.get(todo.pop(), []):
            found.append(child_pid)
            todo.append(child_pid)
    return found


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) spent by this process, by the processes it ran and waited for (ffmpeg),
    and by its live descendants (the temporary server): far less sensitive to a shared machine's load
    than wall time, so the orchestration's own cost shows through the noise."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = os.sysconf("SC_CLK_TCK")
    live = 0.0
    for pid in _descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        live += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    return {
        "cpu_self_s": round(me.ru_utime + me.ru_stime, 1),
        "cpu_tools_s": round(waited.ru_utime + waited.ru_stime, 1),
        "cpu_server_s": round(live, 1),
    }


async def run_core(folder: Path, out: Path, base_url: str, nonce: str) -> dict[str, Any]:
    from pydantic import SecretStr

    from prefect_lipsync.pipeline import JobJournal, JobRunner, RunSettings, plan_run, run_jobs
    from prefect_lipsync.runware.client import RunwareClient

    settings = RunSettings(concurrency=PER_MANIFEST_CONCURRENCY)
    journal = JobJournal.for_endpoint(base_url)
    limit = asyncio.Semaphore(MAX_CONCURRENT_MANIFESTS)
    started = time.perf_counter()
    async with RunwareClient(
        api_key=SecretStr("bench"), base_url=base_url, upload_cache=journal.uploads
    ) as client:

        async def one(manifest: Path) -> list[Any]:
            async with limit:
                plan = await asyncio.to_thread(plan_run, manifest, settings)
                runner = JobRunner(
                    client,
                    settings,
                    out_dir=out / plan.name,
                    journal=journal,
                    offline=True,
                    policy="warn",
                    nonce=nonce,
                )
                return await run_jobs(runner, plan)

        outputs = [
            o
            for group in await asyncio.gather(*(one(m) for m in sorted(folder.glob("*.yaml"))))
            for o in group
        ]
    return {
        "wall_s": time.perf_counter() - started,
        "jobs_ok": sum(1 for o in outputs if o.output and not o.error),
        "api_requests": 0,
    }


async def run_prefect(folder: Path, out: Path, base_url: str, nonce: str) -> dict[str, Any]:
    from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
    from prefect.client.orchestration import get_client

    from prefect_lipsync.blocks import LipsyncSettings
    from prefect_lipsync.flows.localize import localize_batch

    by_route: Counter[str] = Counter()
    async_send, sync_send = PrefectHttpxAsyncClient.send, PrefectHttpxSyncClient.send

    slow: Counter[str] = Counter()  # requests that took the server over a second, by route
    slowest: dict[str, float] = {}
    statuses: Counter[int] = Counter()

    def count(request: Any, took_s: float, status: int) -> None:
        route = f"{request.method} {_ID.sub('{id}', request.url.path)}"
        by_route[route] += 1
        statuses[status] += 1
        if took_s > 1.0:
            slow[route] += 1
            slowest[route] = round(max(took_s, slowest.get(route, 0.0)), 1)

    async def count_async(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        response = await async_send(self, request, *args, **kwargs)
        count(request, time.perf_counter() - began, response.status_code)
        return response

    def count_sync(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        response = sync_send(self, request, *args, **kwargs)
        count(request, time.perf_counter() - began, response.status_code)
        return response

    PrefectHttpxAsyncClient.send = count_async  # type: ignore[method-assign]
    PrefectHttpxSyncClient.send = count_sync  # type: ignore[method-assign]
    server_started = time.perf_counter()
    async with get_client() as client:  # the temporary server starts here, before the clock
        await client.hello()
    server_s = time.perf_counter() - server_started
    by_route.clear()
    slow.clear()
    slowest.clear()
    statuses.clear()
    started = time.perf_counter()
    state = await localize_batch(
        folder=str(folder),
        out_dir=str(out),
        pattern="*.yaml",
        max_concurrent_manifests=MAX_CONCURRENT_MANIFESTS,
        settings=LipsyncSettings(concurrency=PER_MANIFEST_CONCURRENCY),
        base_url=base_url,
        quality_policy="warn",
        rerun_nonce=nonce,
        return_state=True,
    )
    wall = time.perf_counter() - started
    result = await state.result(raise_on_failure=False) if state.is_completed() else None  # type: ignore[misc]
    return {
        "wall_s": wall,
        "server_start_s": server_s,
        "completed": state.is_completed(),
        "message": None if state.is_completed() else str(state.message)[:500],
        "manifests_done": len(result.done) if result is not None else 0,
        "api_requests": sum(by_route.values()),
        "by_route": dict(by_route.most_common()),
        "over_1s_by_route": dict(slow.most_common()),
        "slowest_s_by_route": slowest,
        "statuses": dict(statuses),
    }


def child(args: argparse.Namespace) -> int:
    folder, out = Path(args.folder), Path(args.out)
    runner = run_core if args.mode == "core" else run_prefect
    figures = asyncio.run(runner(folder, out, args.base_url, args.nonce))
    figures["peak_rss_mb"] = peak_rss_mb()
    figures.update(cpu_seconds())
    print("RESULT " + json.dumps(figures), flush=True)
    return 0


def measure(mode: str, folder: Path, base_url: str, scratch: Path) -> dict[str, Any]:
    home = scratch / f"{mode}-{folder.name}"
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_LIPSYNC_CACHE_DIR": str(home / "cache"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    env.pop("PREFECT_API_URL", None)
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--folder",
        str(folder),
        "--out",
        str(home / "out"),
        "--base-url",
        base_url,
        "--nonce",
        f"bench-{mode}-{folder.name}-{time.time_ns()}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=7200)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{mode} run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 50, 250])
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--child", choices=["core", "prefect"])
    parser.add_argument("--folder")
    parser.add_argument("--out")
    parser.add_argument("--base-url")
    parser.add_argument("--nonce")
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        return child(args)

    from prefect_lipsync.demo import build_batch_inbox

    scratch = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    port = free_port()
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect_lipsync.cli",
            "emulator",
            "--port",
            str(port),
            "--latency",
            str(args.latency),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        inbox = scratch / "inbox"
        manifests = build_batch_inbox(inbox, max(args.sizes))
        rows = []
        for n in args.sizes:
            folder = scratch / f"n{n}"
            folder.mkdir()
            (folder / "media").symlink_to(inbox / "media")
            for manifest in manifests[:n]:
                shutil.copy(manifest, folder / manifest.name)
            core = measure("core", folder, base_url, scratch)
            prefect = measure("prefect", folder, base_url, scratch)
            rows.append((n, core, prefect))
            print(f"N={n}: core {json.dumps(core)}\n      prefect {json.dumps(prefect)}", flush=True)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(
        "| N manifests (jobs) | core alone: wall | localize_batch: wall | ratio | Prefect API requests | peak memory core / flow | CPU core / flow (+ its server) | all done |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, core, prefect in rows:
        ok = prefect.get("completed") and prefect.get("manifests_done") == n and core["jobs_ok"] == 2 * n
        print(
            f"| {n} ({2 * n}) | {core['wall_s']:.1f} s | {prefect['wall_s']:.1f} s "
            f"(+{prefect['server_start_s']:.0f} s server start) | {prefect['wall_s'] / core['wall_s']:.2f} "
            f"| {prefect['api_requests']} | {core['peak_rss_mb']:.0f} / {prefect['peak_rss_mb']:.0f} MB "
            f"| {core['cpu_self_s'] + core['cpu_tools_s']:.0f} s / {prefect['cpu_self_s'] + prefect['cpu_tools_s']:.0f} s "
            f"(+{prefect['cpu_server_s']:.0f} s) | {'yes' if ok else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
