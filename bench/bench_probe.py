"""Probe 200 small files: sequential `ffmpeg.probe` vs `probe_many` cold (empty cache) and warm.

Run: .venv/bin/python bench/bench_probe.py [--files 200] [--rounds 3]
Prints one table; times are the median of the rounds, ratios are against the sequential loop
measured in the same run. Goals: cold >= 1.8x faster than sequential on two cores; warm < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ffmpeg

from prefect_lipsync.media.cache import ProbeCache
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.media.probe import probe_many

VARIANTS = [
    ("24", True, "mp4"),
    ("25", True, "mp4"),
    ("30000/1001", True, "mp4"),
    ("50", False, "mkv"),
    ("60", True, "mov"),
]


def make_files(root: Path, count: int) -> list[Path]:
    """A few distinct small videos, copied to `count` distinct paths (a probe costs the same)."""
    root.mkdir(parents=True, exist_ok=True)
    seeds = []
    for i, (rate, audio, ext) in enumerate(VARIANTS):
        out = root / f"seed{i}.{ext}"
        args = ["-y", "-f", "lavfi", "-i", f"testsrc2=size=160x90:rate={rate}:duration=1"]
        if audio:
            args += ["-f", "lavfi", "-i", "sine=sample_rate=48000:duration=1", "-c:a", "aac", "-shortest"]
        run_ffmpeg([*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)])
        seeds.append(out)
    files = []
    for n in range(count):
        seed = seeds[n % len(seeds)]
        dst = root / f"clip{n:04d}{seed.suffix}"
        shutil.copy(seed, dst)
        files.append(dst)
    return files


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
        root = Path(tmp)
        files = make_files(root / "media", args.files)
        names = [str(p) for p in files]
        sequential, cold, warm = [], [], []
        for r in range(args.rounds):
            sequential.append(timed(lambda: [ffmpeg.probe(n) for n in names]))
            cache_file = root / f"cache{r}" / "probe.json"  # empty: a cold run
            cold.append(timed(lambda cf=cache_file: probe_many(names, cache=ProbeCache(cf))))
            # A fresh instance each time, so the JSON load is part of the warm figure.
            warm.append(timed(lambda cf=cache_file: probe_many(names, cache=ProbeCache(cf))))
        check = probe_many(names, cache=None)
        assert len(check) == len(names)
    base = statistics.median(sequential)
    rows = [
        ("sequential ffmpeg.probe loop", base),
        ("probe_many, cold (empty cache)", statistics.median(cold)),
        ("probe_many, warm (cache, incl. load)", statistics.median(warm)),
    ]
    print(f"{args.files} files, {os.cpu_count()} CPUs, median of {args.rounds} rounds")
    print(f"{'case':<40} {'total ms':>10} {'ms/file':>9} {'speed-up':>9}")
    for label, seconds in rows:
        print(
            f"{label:<40} {seconds * 1000:>10.1f} {seconds * 1000 / args.files:>9.3f} {base / seconds:>8.1f}x"
        )
    print(
        f"goals: cold speed-up >= 1.8x -> {base / statistics.median(cold):.2f}x; "
        f"warm < 50 ms -> {statistics.median(warm) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
