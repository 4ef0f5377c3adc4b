"""Benchmark: polling N jobs over REST and over the WebSocket, against the emulator.

Over both transports a sync-3 result is had by polling getResponse (the service pushes nothing for
async tasks over the socket; the official SDK polls there too), so the number of round trips is
set by the cadence, not the transport. What differs is the cost of one round trip. Measured here:
milliseconds per polling round for N jobs in flight, the emulator in its own process, for
- REST, one getResponse per POST (the official SDK's way): N POSTs per round;
- REST, N getResponse tasks in one POST (our client's way): 1 POST per round;
- WebSocket, one task per message: N messages per round;
- WebSocket, N tasks in one message: 1 message per round.
Then whole runs of `--runs-jobs` sync-3 jobs (latency 5 s): our client (REST, batched), and the
official SDK over REST and over its WebSocket; wall time, and requests or messages the emulator saw.

    .venv/bin/python bench/bench_emulator_transports.py [--jobs 20] [--rounds 200] [--runs-jobs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

KEY = "bench-key"


async def _jobs(url: str, http: Any, count: int, video: Path) -> list[str]:
    import base64

    upload = {
        "taskType": "mediaStorage",
        "taskUUID": str(uuid.uuid4()),
        "operation": "upload",
        "media": base64.b64encode(video.read_bytes()).decode(),
    }
    media = (await http.post(url, json=[upload])).json()["data"][0]["mediaUUID"]
    tasks = [
        {
            "taskType": "videoInference",
            "taskUUID": str(uuid.uuid4()),
            "model": "sync:3@0",
            "inputs": {"video": media},
            "speech": {"text": "bench"},
        }
        for _ in range(count)
    ]
    answer = await http.post(url, json=tasks)
    answer.raise_for_status()
    return [t["taskUUID"] for t in tasks]


def _polls(uuids: list[str]) -> list[dict[str, str]]:
    return [{"taskType": "getResponse", "taskUUID": u} for u in uuids]


async def _measure(round_trip: Callable[[], Awaitable[None]], rounds: int) -> list[float]:
    for _ in range(5):  # warm-up
        await round_trip()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await round_trip()
        times.append((time.perf_counter() - start) * 1000)
    return times


async def _bench(url: str, jobs: int, rounds: int, video: Path) -> dict[str, list[float]]:
    import httpx
    from websockets.asyncio.client import connect

    results: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        uuids = await _jobs(url, http, jobs, video)

        async def rest_single() -> None:
            for poll in _polls(uuids):
                (await http.post(url, json=[poll])).raise_for_status()

        async def rest_batch() -> None:
            answer = await http.post(url, json=_polls(uuids))
            assert len(answer.json()["data"]) == jobs

        results["REST, 1 task per POST"] = await _measure(rest_single, rounds)
        results["REST, N tasks per POST"] = await _measure(rest_batch, rounds)

    async with connect(url.replace("http://", "ws://", 1), max_size=None) as ws:
        await ws.send(json.dumps([{"taskType": "authentication", "apiKey": KEY}]))
        await ws.recv()

        async def ws_single() -> None:
            for poll in _polls(uuids):
                await ws.send(json.dumps([poll]))
                await ws.recv()

        async def ws_batch() -> None:
            await ws.send(json.dumps(_polls(uuids)))
            for _ in range(jobs):  # one frame per task
                await ws.recv()

        results["WebSocket, 1 task per message"] = await _measure(ws_single, rounds)
        results["WebSocket, N tasks per message"] = await _measure(ws_batch, rounds)
    return results


async def _run_ours(url: str, media: str, jobs: int) -> int:
    from prefect_lipsync.runware import RunwareClient, Sync3Request

    reqs = [
        Sync3Request.model_validate({"inputs": {"video": media}, "speech": {"text": f"ours {i}"}})
        for i in range(jobs)
    ]
    async with RunwareClient(KEY, base_url=url) as client:
        results = await client.lipsync_many(reqs, timeout=600)
    return sum(len(r) for r in results)


async def _run_sdk(url: str, media: str, jobs: int, transport: str) -> int:
    from runware import Runware

    options: dict[str, Any] = (
        {"transport": "rest", "http_base_url": url}
        if transport == "rest"
        else {"transport": "websocket", "ws_base_url": url.replace("http://", "ws://", 1)}
    )
    tasks = [
        {
            "taskType": "videoInference",
            "model": "sync:3@0",
            "inputs": {"video": media},
            "speech": {"text": f"sdk {transport} {i}"},
        }
        for i in range(jobs)
    ]
    async with Runware(api_key=KEY, validate=False, **options) as client:
        results = await asyncio.gather(*(client.run(t) for t in tasks))
    return sum(len(r) for r in results)


def _whole_runs(jobs: int, video: Path) -> list[tuple[str, float, int, int]]:
    import httpx

    rows = []
    with _emulator_process(latency=5.0) as url:
        stats_url = url.removesuffix("/v1") + "/_emulator/stats"
        media = asyncio.run(_upload(url, video))
        runs: list[tuple[str, Callable[[], Awaitable[int]]]] = [
            ("prefect-lipsync (REST)", lambda: _run_ours(url, media, jobs)),
            ("runware-sdk 1.8.0, REST", lambda: _run_sdk(url, media, jobs, "rest")),
            ("runware-sdk 1.8.0, WebSocket", lambda: _run_sdk(url, media, jobs, "websocket")),
        ]
        for name, run in runs:
            before = httpx.get(stats_url).json()
            start = time.perf_counter()
            count = asyncio.run(run())
            wall = time.perf_counter() - start
            after = httpx.get(stats_url).json()
            assert count == jobs, (name, count)
            rows.append(
                (
                    name,
                    wall,
                    after["http_requests"] - before["http_requests"],
                    after["ws_messages"] - before["ws_messages"],
                )
            )
    return rows


async def _upload(url: str, video: Path) -> str:
    import base64

    import httpx

    task = {
        "taskType": "mediaStorage",
        "taskUUID": str(uuid.uuid4()),
        "operation": "upload",
        "media": base64.b64encode(video.read_bytes()).decode(),
    }
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
        media: str = (await http.post(url, json=[task])).json()["data"][0]["mediaUUID"]
    return media


@contextlib.contextmanager
def _emulator_process(latency: float) -> Iterator[str]:
    """An emulator in a process of its own (it does not share the client's GIL); its base URL."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom prefect_lipsync.emulator import run_emulator\n"
            f"with run_emulator(latency={latency!r}, api_key={KEY!r}) as url:\n"
            "    print(url, flush=True)\n    sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20, help="Jobs in flight, polled each round.")
    parser.add_argument("--rounds", type=int, default=200, help="Polling rounds measured per mode.")
    parser.add_argument("--runs-jobs", type=int, default=200, help="Jobs of each whole run (0: none).")
    args = parser.parse_args()

    from prefect_lipsync.media.synth import make_talking_card

    work = Path(tempfile.mkdtemp(prefix="bench-transports-"))
    try:
        video = make_talking_card(work / "card.mp4", duration=2.0, size=(160, 90))
        with _emulator_process(latency=3600) as url:
            results = asyncio.run(_bench(url, args.jobs, args.rounds, video))
        runs = _whole_runs(args.runs_jobs, video) if args.runs_jobs else []
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.jobs} jobs in flight, {args.rounds} polling rounds each; emulator in its own process\n")
    print(f"{'mode':<34}{'round trips/round':>18}{'ms/round p50':>14}{'ms/round mean':>15}")
    for mode, times in results.items():
        trips = 1 if "N tasks" in mode else args.jobs
        print(f"{mode:<34}{trips:>18}{statistics.median(times):>14.2f}{statistics.fmean(times):>15.2f}")
    if runs:
        print(f"\nWhole runs: {args.runs_jobs} sync-3 jobs, emulator latency 5 s (the floor)\n")
        print(f"{'client':<32}{'wall s':>9}{'HTTP requests':>15}{'WS messages':>13}")
        for name, wall, http_requests, ws_messages in runs:
            print(f"{name:<32}{wall:>9.2f}{http_requests:>15}{ws_messages:>13}")


if __name__ == "__main__":
    main()
