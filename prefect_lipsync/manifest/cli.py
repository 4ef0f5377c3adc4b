"""`prefect-lipsync plan MANIFEST` and `prefect-lipsync manifest import FILE.srt|vtt`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefect_lipsync.manifest.importer import dump_manifest, import_subtitles, write_manifest
from prefect_lipsync.manifest.plan_models import Plan
from prefect_lipsync.manifest.subtitle_encoding import SubtitleEncodingError, canonical_encoding, encoding_fix
from prefect_lipsync.manifest.subtitle_speakers import (
    ALL_SPEAKER_RULES,
    NO_SPEAKER_RULES,
    SpeakerRule,
    parse_speaker_rules,
)
from prefect_lipsync.manifest.subtitles import SubtitleError


def price_per_second_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite price of 0 or more USD per second, got {text}")
    return value


def _encoding(text: str) -> str:
    try:
        return canonical_encoding(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _speaker_rules(text: str) -> frozenset[SpeakerRule]:
    try:
        return parse_speaker_rules(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    manifest = subparsers.add_parser("manifest", help="work with manifests", description="Manifest tools.")
    sub = manifest.add_subparsers(dest="manifest_command", metavar="ACTION")
    imp = sub.add_parser(
        "import",
        help="turn an SRT or WebVTT file into a manifest",
        description="Write a manifest with one line per subtitle cue (times, speakers and text kept).",
    )
    imp.add_argument("subtitles", metavar="FILE", help="an .srt or .vtt file")
    imp.add_argument("--video", required=True, help="the source video (path or URL)")
    imp.add_argument(
        "--audio",
        required=True,
        metavar="TEMPLATE",
        help='per-line audio, e.g. "it/{index:03d}.wav" ({index}, {id}, {speaker})',
    )
    imp.add_argument(
        "--language", help="language code (default: from the file name, e.g. promo.it.srt -> it)"
    )
    imp.add_argument("--name", help="manifest name, used in output file names")
    imp.add_argument(
        "--encoding",
        type=_encoding,
        metavar="NAME",
        help="the file's text encoding when it is not UTF-8 and has no byte-order mark (e.g. cp1252, gb2312)",
    )
    who = imp.add_mutually_exclusive_group()
    who.add_argument(
        "--speakers",
        type=_speaker_rules,
        default=ALL_SPEAKER_RULES,
        metavar="RULES",
        help="which subtitle conventions name a speaker, a comma list of voice (WebVTT <v Name>), "
        "dash ('- NAME: ...'), label ('Name: ...'), bracket ('[Name] ...'); default: all",
    )
    who.add_argument(
        "--no-speakers",
        dest="speakers",
        action="store_const",
        const=NO_SPEAKER_RULES,
        help="take no speaker from the file (labels stay in the text)",
    )
    imp.add_argument("--out", metavar="MANIFEST.yaml", help="write here (atomically) instead of printing")
    imp.set_defaults(handler=run_import)
    manifest.set_defaults(handler=lambda args: _usage(manifest))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def format_plan(plan: Plan) -> str:
    header = ["LANGUAGE", "KIND", "SEGMENTS", "AUDIO OPS", "DROPPED", "WARNINGS", "VIDEO S", "OUTPUT"]
    rows = [header]
    for job in plan.jobs:
        settings = job.request.settings
        segments = len(settings.segments) if settings and settings.segments else 0
        rows.append(
            [
                job.language,
                job.kind,
                str(segments) if segments else "-",
                str(len(job.audio_ops)),
                str(len(job.dropped_lines)),
                str(len(job.warnings)),
                f"{job.video_duration:.2f}",
                job.output_name,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append("")
    lines.append(
        f"estimate: {plan.estimated_seconds:g} output s x {plan.price_per_second:g} USD/s = "
        f"{plan.estimated_cost_usd:.2f} USD (an estimate: Runware publishes no sync-3 price)"
    )
    warned = [(job.language, w) for job in plan.jobs for w in job.warnings]
    if warned:
        lines.append("")
        lines.append("warnings:")
        lines.extend(f"  {lang}: {w}" for lang, w in warned)
    return "\n".join(lines)


def run_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    manifest_dir = Path(args.out).resolve().parent if args.out else Path.cwd()
    try:
        imported = import_subtitles(
            args.subtitles,
            video=args.video,
            audio_template=args.audio,
            language=args.language,
            name=args.name,
            manifest_dir=manifest_dir,
            encoding=args.encoding,
            speakers=args.speakers,
        )
    except SubtitleError as exc:
        where = f"{args.subtitles}:{exc.line}" if exc.line else args.subtitles
        fix = (
            encoding_fix(exc.guesses, "pass --encoding {name}")
            if isinstance(exc, SubtitleEncodingError)
            else exc.fix
        )
        print(f"{where}: {exc}\n  fix: {fix}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = imported.data
    report = "\n".join(imported.report(args.subtitles))
    if args.out:
        path = write_manifest(data, args.out)
        lines = sum(len(spec["lines"]) for spec in data["languages"].values())
        print(f"wrote {path} ({lines} lines)\n{report}")
    else:  # stdout is the manifest: the report goes beside it, to stderr
        sys.stdout.write(dump_manifest(data))
        print(report, file=sys.stderr)
    return 0
