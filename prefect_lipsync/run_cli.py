"""`prefect-lipsync run MANIFEST --out DIR`: runs the `localize_video` flow.

The manifest is planned with the core planner first, before Prefect is imported: a bad manifest is
reported once, as `plan` reports it, in about a second, and no Prefect server is started for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from prefect_lipsync.flows.localize import LocalizeResult


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="Localize one manifest: plan, submit, wait, download and check every language.",
        description=(
            "Runs the localize_video flow. Credentials: --credentials BLOCK, or RUNWARE_API_KEY; with "
            "neither, the local emulator runs in-process (dub previews without lip movement)."
        ),
    )
    parser.add_argument("manifest", type=Path, help="The manifest (YAML or JSON, version 1).")
    parser.add_argument("--out", type=Path, default=Path("lipsync-output"), help="Folder for the outputs.")
    parser.add_argument(
        "--language", action="append", dest="languages", help="Only this language (repeatable)."
    )
    parser.add_argument("--credentials", help="Name of a saved RunwareCredentials block.")
    parser.add_argument("--base-url", help="Another endpoint, e.g. an emulator: http://127.0.0.1:8765/v1.")
    parser.add_argument(
        "--quality-policy", choices=["fail", "warn", "ask"], default="fail", help="What a failed check does."
    )
    parser.add_argument("--rerun-nonce", help="Pay again for jobs already done (a deliberate re-run).")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return run_manifest(
        args.manifest,
        args.out,
        languages=args.languages,
        credentials=args.credentials,
        base_url=args.base_url,
        quality_policy=args.quality_policy,
        rerun_nonce=args.rerun_nonce,
    )


def run_manifest(
    manifest: Path,
    out: Path,
    *,
    languages: list[str] | None = None,
    credentials: str | None = None,
    base_url: str | None = None,
    quality_policy: str = "fail",
    rerun_nonce: str | None = None,
) -> int:
    """Run `localize_video` and print where the outputs are; exit code 0 on success."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # With no PREFECT_API_URL, Prefect starts a temporary server and gives it 20 s by default: too little
    # on a busy 2-core machine, where the run then dies with a traceback before it starts.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not manifest.exists():
        print(f"prefect-lipsync run: {manifest}: no such manifest", file=sys.stderr)
        return 2
    problem = _plan_problem(manifest, languages)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from prefect_lipsync.flows.localize import localize_video

    run = cast(
        "Coroutine[Any, Any, State[LocalizeResult]]",
        localize_video(
            manifest=str(manifest),
            out_dir=str(out),
            languages=languages,
            credentials_block=credentials,
            base_url=base_url,
            quality_policy=quality_policy,
            rerun_nonce=rerun_nonce,
            return_state=True,
        ),
    )
    state = asyncio.run(run)
    if not state.is_completed():
        print(f"\nThe run did not complete: {state.message}", file=sys.stderr)
        return 1
    result = state.result()
    print()
    if result.offline:
        print("LOCAL EMULATOR: these outputs are dub previews WITHOUT lip movement.")
    for output in result.outputs:
        print(f"[{output.language}] {output.verdict or ''}")
        print(f"    output:   {output.output or output.quarantined_to}")
        print(f"    report:   {output.report}")
        for finding in _findings(output.report):
            print(f"    finding:  {finding}")
        for picture in output.pictures:
            print(f"    picture:  {picture}")
        for warning in output.warnings:
            print(f"    warning:  {warning}")
    print(f"\nAll outputs in {out.resolve()}")
    return 0


def _plan_problem(manifest: Path, languages: list[str] | None) -> str | None:
    """What `plan` would say is wrong with the manifest (or the languages asked for); None when it plans."""
    from prefect_lipsync.manifest.errors import ManifestError
    from prefect_lipsync.manifest.pipeline import load_and_plan
    from prefect_lipsync.media.errors import MediaError

    try:
        plan = load_and_plan(manifest)
    except ManifestError as exc:
        return str(exc)
    except MediaError as exc:  # ffprobe missing and the like: not the manifest's fault
        return f"prefect-lipsync run: {exc}"
    planned = [job.language for job in plan.jobs]
    unknown = [language for language in languages or [] if language not in planned]
    if unknown:
        return (
            f"prefect-lipsync run: {manifest}: no language {', '.join(unknown)} in this manifest\n"
            f"      fix: pick --language from {', '.join(planned)}"
        )
    return None


def _findings(report_path: str | None) -> list[str]:
    """The checks of a report that did not pass, one line each."""
    if not report_path:
        return []
    try:
        checks = json.loads(Path(report_path).read_text(encoding="utf-8"))["checks"]
    except (OSError, ValueError, KeyError):
        return []
    return [f"{c['status']} {c['name']}: {c['message']}" for c in checks if c.get("status") != "pass"]
