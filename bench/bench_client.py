"""Benchmark: 200 sync-3 jobs (submit + wait, no download) on the emulator with 5 s latency.

Ours (`RunwareClient.lipsync_many`: batched submits, one batched poller) against the official
runware-sdk 1.8.0 REST client (`asyncio.gather` of `Runware.run(...)`: one submit POST and one
getResponse POST per task per tick). Same emulator, same media, no faults. Prints a table: wall
time, time over the 5 s floor, and HTTP requests the emulator saw.

    .venv/bin/python bench/bench_client.py [--jobs 200] [--latency 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.media.synth import make_talking_card, make_tone
from prefect_lipsync.runware import RunwareClient, Sync3Request

KEY = "bench-key"


def _requests(video: str, audio: str, jobs: int, tag: str) -> list[Sync3Request]:
    # Distinct content per job and per run (quality x sync mode x format: 960 combinations; ttl is a
    # delivery detail, not content), so each job is its own task and no run sees the other's tasks.
    offset = 0 if tag == "ours" else 480
    modes, formats = ("cut_off", "silence", "bounce", "remap"), ("MP4", "WEBM", "MOV")
    requests = []
    for i in range(offset, offset + jobs):
        payload = {
            "inputs": {"video": video, "audio": audio},
            "outputQuality": 20 + i % 80,
            "settings": {"syncMode": modes[(i // 80) % 4]},
            "outputFormat": formats[(i // 320) % 3],
        }
        requests.append(Sync3Request.model_validate(payload))
    return requests


async def _ours(url: str, reqs: list[Sync3Request]) -> int:
    async with RunwareClient(KEY, base_url=url) as client:
        results = await client.lipsync_many(reqs, timeout=600)
    return sum(len(r) for r in results)


async def _sdk(url: str, reqs: list[Sync3Request]) -> int:
    from runware import Runware

    async with Runware(api_key=KEY, transport="rest", http_base_url=url) as client:
        results = await asyncio.gather(*(client.run(r.to_wire()) for r in reqs))
    return sum(len(r) for r in results)


async def _upload(url: str, video: Path, audio: Path) -> tuple[str, str]:
    async with RunwareClient(KEY, base_url=url) as client:
        v, a = await client.upload(video), await client.upload(audio)
    assert a.media_url is not None
    return v.media_uuid, a.media_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-client-"))
    video = make_talking_card(work / "face.mp4", duration=1.0, size=(160, 120))
    audio = make_tone(work / "voice.wav", duration=1.0)
    rows: list[tuple[str, float, int, dict[str, Any]]] = []
    with run_emulator(latency=args.latency, seed=1) as url:
        media = asyncio.run(_upload(url, video, audio))
        for name, runner in (("prefect-lipsync", _ours), ("runware-sdk 1.8.0", _sdk)):
            reqs = _requests(*media, args.jobs, "ours" if runner is _ours else "sdk")
            before = url.stats()
            start = time.perf_counter()
            count = asyncio.run(runner(url, reqs))
            wall = time.perf_counter() - start
            after = url.stats()
            delta = {
                "http": after["http_requests"] - before["http_requests"],
                "polls": after["requests"].get("getResponse", 0) - before["requests"].get("getResponse", 0),
                "accepted": after["accepted"] - before["accepted"],
            }
            assert count == args.jobs, (name, count)
            rows.append((name, wall, count, delta))
    base = rows[1]
    print(f"\n{args.jobs} sync-3 jobs, emulator latency {args.latency:g} s (floor), no faults\n")
    print(f"{'client':<20}{'wall s':>9}{'over floor s':>14}{'HTTP requests':>15}{'getResponse tasks':>19}"
          f"{'accepted':>10}{'wall vs SDK':>13}{'requests vs SDK':>17}")  # fmt: skip
    for name, wall, _, d in rows:
        print(
            f"{name:<20}{wall:>9.2f}{wall - args.latency:>14.2f}{d['http']:>15}{d['polls']:>19}{d['accepted']:>10}"
            f"{wall / base[1]:>13.2f}{d['http'] / base[3]['http']:>17.3f}"
        )
    ratio = base[3]["http"] / max(rows[0][3]["http"], 1)
    print(f"\nSDK/ours HTTP requests: {ratio:.1f}x")


if __name__ == "__main__":
    main()
