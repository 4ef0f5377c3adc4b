"""`prefect-lipsync probe FILE...`: what ffprobe says about media files, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.media.probe import DEFAULT_CACHE, DEFAULT_PROBE_TIMEOUT_S, CacheArg, probe_many


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="show duration, frame rate, frames, rotation, timecode and audio streams of media files",
        description="Probe media files with ffprobe (cached by path, size and mtime) and print what they hold.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="media files or http(s) URLs")
    parser.add_argument("--json", action="store_true", help="print a JSON list of MediaInfo objects")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_PROBE_TIMEOUT_S, metavar="S", help="ffprobe timeout per file"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="probe every file again; do not use the cache"
    )
    parser.set_defaults(handler=run_probe)


def format_fps(fps: Fraction) -> str:
    """25 -> "25", 30000/1001 -> "29.97 (30000/1001)"."""
    if fps.denominator == 1:
        return str(fps.numerator)
    return f"{float(fps):.3f}".rstrip("0").rstrip(".") + f" ({fps.numerator}/{fps.denominator})"


def table_row(info: MediaInfo) -> list[str]:
    video = info.video
    audio = "; ".join(f"{a.codec} {a.sample_rate} Hz {a.channels} ch" for a in info.audio) or "-"
    timecode = info.timecode or "-"
    if video is None:
        return [info.path, f"{info.duration:.3f}", "-", "-", "-", "-", timecode, audio]
    geometry = f"{video.codec} {video.width}x{video.height}@{format_fps(video.fps)}"
    frames = "?" if video.frame_count is None else str(video.frame_count)
    shown_w, shown_h = video.shown_size
    shown = f"{shown_w}x{shown_h} (rotated {video.rotation})" if video.rotation else "-"
    return [
        info.path,
        f"{info.duration:.3f}",
        geometry,
        frames,
        "yes" if video.variable_frame_rate else "no",
        shown,
        timecode,
        audio,
    ]


def format_table(infos: Sequence[MediaInfo]) -> str:
    header = ["FILE", "DURATION S", "VIDEO", "FRAMES", "VFR", "SHOWN AS", "TIMECODE", "AUDIO"]
    rows = [header, *(table_row(i) for i in infos)]
    widths = [max(len(row[col]) for row in rows) for col in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def run_probe(args: argparse.Namespace) -> int:
    cache: CacheArg = None if args.no_cache else DEFAULT_CACHE
    outcomes = probe_many(args.files, timeout=args.timeout, cache=cache, return_errors=True)
    infos = [o for o in outcomes.values() if isinstance(o, MediaInfo)]
    errors = [o for o in outcomes.values() if isinstance(o, MediaError)]
    if args.json:
        print(json.dumps([i.model_dump(mode="json") for i in infos], indent=2))
    elif infos:
        print(format_table(infos))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0
