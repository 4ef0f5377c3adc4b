"""Benchmark: upload and download of a 300 MB file through the emulator; peak memory growth.

Each measurement runs in its own subprocess (the emulator in another), and reports the growth of
the process's peak RSS (ru_maxrss) over what it had after imports and a warm-up transfer. Ours
(`RunwareClient.upload` streaming base64 from disk; `RunwareClient.download` streaming to a temp
file) against the naive way in the same run (whole file -> base64 -> JSON in memory; `.content`).
Goal: < 64 MB growth each for ours.

    .venv/bin/python bench/bench_transfer.py [--mb 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

KEY = "bench-key"
MB = 1 << 20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def _worker(mode: str, url: str, path: Path, media_url: str | None) -> dict[str, object]:
    import httpx

    from prefect_lipsync.runware import RunwareClient

    async with RunwareClient(KEY, base_url=url) as client, httpx.AsyncClient(timeout=300) as http:
        warm = await client.upload(os.urandom(3 * MB))  # warm-up: buffers, pools, threads
        assert warm.media_url is not None
        await client.download(warm.media_url, path.parent / "warm.bin")
        (await http.get(warm.media_url)).raise_for_status()
        before = _peak_mb()
        start = time.perf_counter()
        out: str | None = None
        if mode == "ours-upload":
            out = (await client.upload(path)).media_url
        elif mode == "naive-upload":
            body = json.dumps(
                [
                    {
                        "taskType": "mediaStorage",
                        "taskUUID": str(uuid.uuid4()),
                        "operation": "upload",
                        "media": base64.b64encode(path.read_bytes()).decode(),
                    }
                ]
            )
            r = await http.post(url, content=body, headers={"Authorization": f"Bearer {KEY}"})
            out = r.json()["data"][0]["mediaURL"]
        elif mode == "ours-download":
            assert media_url is not None
            await client.download(media_url, path.parent / f"{mode}.bin")
        elif mode == "naive-download":
            assert media_url is not None
            data = (await http.get(media_url)).content
            (path.parent / f"{mode}.bin").write_bytes(data)
        wall = time.perf_counter() - start
    return {"wall": wall, "growth_mb": _peak_mb() - before, "media_url": out}


def _run_worker(mode: str, url: str, path: Path, media_url: str | None) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", mode, "--url", url, "--file", str(path)]
    if media_url:
        cmd += ["--media-url", media_url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--worker")
    parser.add_argument("--url")
    parser.add_argument("--file")
    parser.add_argument("--media-url")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(_worker(args.worker, args.url, Path(args.file), args.media_url))))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    big = work / "big.bin"
    with big.open("wb") as fh:
        for _ in range(args.mb):
            fh.write(os.urandom(MB))
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom prefect_lipsync.emulator import run_emulator\n"
            f"with run_emulator(storage_dir={str(work / 'emu')!r}) as url:\n"
            "    print(url, flush=True)\n    sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        rows = {}
        for mode in ("ours-upload", "naive-upload"):
            rows[mode] = _run_worker(mode, url, big, None)
        media_url = str(rows["ours-upload"]["media_url"])
        for mode in ("ours-download", "naive-download"):
            rows[mode] = _run_worker(mode, url, big, media_url)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    print(f"\n{args.mb} MB file, emulator in its own process; peak RSS growth of the client process\n")
    print(
        f"{'operation':<16}{'wall s':>9}{'MB/s':>8}{'peak growth MB':>16}{'memory vs naive':>17}{'wall vs naive':>15}"
    )
    for op in ("upload", "download"):
        naive = rows[f"naive-{op}"]
        for who in ("ours", "naive"):
            r = rows[f"{who}-{op}"]
            wall, growth = float(r["wall"]), float(r["growth_mb"])  # type: ignore[arg-type]
            print(
                f"{who + ' ' + op:<16}{wall:>9.2f}{args.mb / wall:>8.0f}{growth:>16.1f}"
                f"{growth / max(float(naive['growth_mb']), 1e-9):>17.3f}{wall / float(naive['wall']):>15.2f}"  # type: ignore[arg-type]
            )


if __name__ == "__main__":
    main()
