"""Planning a 2,000-line manifest (synthetic probe results): the target is under 1 s.

Prints a table: median seconds of `plan_manifest` per scenario, and the ratio against a baseline
measured in the same run: validating the planned request alone (Sync3Request.model_validate of
its wire payload), which any planner has to pay for.

    .venv/bin/python bench/bench_plan.py [--lines 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from prefect_lipsync.manifest import Manifest, plan_manifest, prepare
from prefect_lipsync.media.info import AudioStream, MediaInfo, VideoStream
from prefect_lipsync.runware.models import Sync3Request

BASE = "/bench"
FPS = "30000/1001"


def video(duration: float) -> MediaInfo:
    fps = Fraction(FPS)
    return MediaInfo(
        path=f"{BASE}/v.mp4",
        duration=duration,
        video=VideoStream(
            index=0,
            codec="h264",
            width=1920,
            height=1080,
            fps=fps,
            frame_count=int(duration * fps),
            duration=duration,
        ),
        audio=[AudioStream(index=1, codec="aac", sample_rate=48000, channels=2, duration=duration)],
    )


def audio(path: str, duration: float) -> MediaInfo:
    return MediaInfo(
        path=path,
        duration=duration,
        audio=[AudioStream(index=0, codec="pcm_s16le", sample_rate=48000, channels=1)],
    )


def scenario(kind: str, n: int) -> tuple[dict[str, Any], dict[str, MediaInfo]]:
    """A manifest of n lines 1.2 s long, in pairs, and its probes."""
    media: dict[str, MediaInfo] = {}
    lines = []
    for i in range(n):
        # pairs of lines 0.2 s apart (below merge_gap), pairs 0.6 s apart
        start = round((i // 2) * 3.0 + (i % 2) * 1.4 + 0.5, 3)
        line: dict[str, Any] = {"id": f"l{i:05d}", "start": start, "end": round(start + 1.2, 3)}
        if kind == "take":  # one long take, lines cropped from it, some contiguous (merged)
            line.update(audio="take.wav", audio_start=round(i * 1.25, 3), audio_end=round(i * 1.25 + 1.2, 3))
        else:
            line["audio"] = f"es/{i:05d}.wav"
            # a third of the lines is too long for its slot: extension, tempo ops, truncation
            media[f"{BASE}/es/{i:05d}.wav"] = audio(f"{BASE}/es/{i:05d}.wav", (1.0, 1.7, 2.2)[i % 3])
        if kind == "boxes":
            line["speaker"] = "anna" if i % 2 else "bob"
        lines.append(line)
    duration = n * 1.5 + 2
    media[f"{BASE}/v.mp4"] = video(duration)
    media[f"{BASE}/take.wav"] = audio(f"{BASE}/take.wav", n * 1.25 + 2)
    data: dict[str, Any] = {"version": 1, "video": "v.mp4", "languages": {"es": {"lines": lines}}}
    if kind == "boxes":
        data["speakers"] = {"anna": {"box": [100, 100, 400, 500]}, "bob": {"box": [900, 100, 1200, 500]}}
    return data, media


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for kind, label in (
        ("files", "one file per line, fitting + tempo ops, auto speaker"),
        ("take", "crops of one take, merging"),
        ("boxes", "two speakers, per-frame box track"),
    ):
        data, media = scenario(kind, args.lines)
        loaded = prepare(Manifest.model_validate(data), base_dir=BASE)

        def run(loaded: Any = loaded, media: dict[str, MediaInfo] = media) -> Any:
            return plan_manifest(loaded, media, audio_ops_dir="/bench/ops")

        plan = run()
        wire = plan.jobs[0].request.to_wire()
        seconds = median_time(run, args.repeat)
        baseline = median_time(lambda wire=wire: Sync3Request.model_validate(wire), args.repeat)
        load = median_time(
            lambda data=data: prepare(Manifest.model_validate(data), base_dir=BASE), args.repeat
        )
        segs = len(wire["settings"]["segments"])
        rows.append((label, segs, len(plan.jobs[0].audio_ops), load, seconds, baseline, seconds / baseline))
    header = ("scenario", "segments", "ops", "load s", "plan s", "validate-only s", "plan/validate")
    print(f"planning {args.lines} lines, {FPS} fps, median of {args.repeat} runs (target: plan < 1 s)")
    widths = [max(len(header[0]), *(len(r[0]) for r in rows)), 8, 5, 8, 8, 15, 13]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for label, segs, ops, load, seconds, baseline, ratio in rows:
        cells = (
            label,
            str(segs),
            str(ops),
            f"{load:.3f}",
            f"{seconds:.3f}",
            f"{baseline:.3f}",
            f"{ratio:.1f}x",
        )
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))


if __name__ == "__main__":
    main()
