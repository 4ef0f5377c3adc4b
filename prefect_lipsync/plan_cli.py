"""The `plan` command: a manifest checked and planned exactly as a run with default settings submits it.

It sits above the manifest layer because the requests it shows carry the run settings' wire options
(format, quality, safety, cost); the manifest layer itself knows nothing of run settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from prefect_lipsync.manifest.cli import format_plan, price_per_second_arg
from prefect_lipsync.manifest.errors import ManifestError
from prefect_lipsync.manifest.plan_models import DEFAULT_PRICE_PER_SECOND
from prefect_lipsync.media.errors import MediaError


def register(subparsers: Any) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="check a manifest and show the sync-3 requests it makes (probes the media; submits nothing)",
        description="Load a manifest, probe its media (cached) and plan one sync-3 request per language. "
        "Exit 0 with a plan; non-zero with every problem on stderr.",
    )
    plan.add_argument("manifest", metavar="MANIFEST", help="the manifest file (.yaml, .yml or .json)")
    plan.add_argument(
        "--json", action="store_true", help="print the plan as JSON (requests as sent on the wire)"
    )
    plan.add_argument(
        "--price-per-second",
        type=price_per_second_arg,
        default=DEFAULT_PRICE_PER_SECOND,
        metavar="USD",
        help=f"USD per output second for the cost ESTIMATE (default {DEFAULT_PRICE_PER_SECOND}; "
        "Runware publishes no sync-3 price)",
    )
    plan.add_argument("--audio-ops-dir", metavar="DIR", help="where sped-up or cut audio will be rendered")
    plan.set_defaults(handler=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    from prefect_lipsync.manifest.pipeline import load_and_plan
    from prefect_lipsync.pipeline.settings import RunSettings  # lazily: the command stays quick to start

    try:
        # The requests exactly as a run with default settings submits them (format, safety, cost).
        plan = load_and_plan(
            args.manifest,
            price_per_second=args.price_per_second,
            audio_ops_dir=args.audio_ops_dir,
            request_options=RunSettings().request_options(),
        )
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except MediaError as exc:  # ffprobe missing and the like: not the manifest's fault
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(plan.to_json_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_plan(plan))
    return 0
