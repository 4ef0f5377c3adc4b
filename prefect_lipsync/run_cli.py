"""`prefect-lipsync run MANIFEST --out DIR`: runs the `localize_video` flow.

The manifest is planned with the core planner first, before Prefect is imported: a bad manifest is
reported once, as `plan` reports it, in about a second, and no Prefect server is started for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from prefect_lipsync.flows.localize import LocalizeResult
    from prefect_lipsync.pipeline.outcome import RunOutcome


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
    started = time.time()
    with _quality_rejection_kept_off_the_console():
        state = asyncio.run(run)
    if not state.is_completed():
        rejection = _rejection(state)
        outcome = _outcome(out, manifest, since=started) if rejection is not None else None
        if rejection is None or outcome is None:
            print(f"\nThe run did not complete: {state.message}", file=sys.stderr)
            return 1
        # A quality rejection is the run's answer, not a crash: the findings once, in plain text.
        _print_outputs(outcome)
        print(
            f"\nThe run did not complete: {_rejection_line(outcome, rejection, quality_policy)}",
            file=sys.stderr,
        )
        return 1
    _print_outputs(state.result())
    print(f"\nAll outputs in {out.resolve()}")
    return 0


def _print_outputs(result: RunOutcome) -> None:
    print()
    if result.offline:
        print("LOCAL EMULATOR: these outputs are dub previews WITHOUT lip movement.")
    for output in result.outputs:
        print(f"[{output.language}] {output.verdict or ('error' if output.error else '')}")
        if output.error:
            print(f"    error:    {output.error}")
        if output.output or not (output.quarantined_to or output.error):
            print(f"    output:   {output.output}")
        if output.quarantined_to:
            where = "held:    " if output.held else "quarantine:"
            print(f"    {where} {output.quarantined_to}")
        if output.report:
            print(f"    report:   {output.report}")
        for finding in _findings(output.report):
            print(f"    finding:  {finding}")
        for picture in output.pictures:
            print(f"    picture:  {picture}")
        for warning in output.warnings:
            print(f"    warning:  {warning}")


#: The exception the flow raises when outputs failed their checks or a reviewer rejected them.
REJECTION = "QualityRejected"


def _is_rejection(exc: BaseException | None) -> bool:
    return exc is not None and type(exc).__name__ == REJECTION


class _RejectionFilter(logging.Filter):
    """Keeps a quality rejection's traceback and markdown off the console (the API log keeps them):
    the command prints the findings itself, once, in plain text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and _is_rejection(record.exc_info[1]):
            return False
        return not (record.name.startswith("prefect.flow_runs") and REJECTION in record.getMessage())


@contextlib.contextmanager
def _quality_rejection_kept_off_the_console() -> Iterator[None]:
    consoles = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    only = _RejectionFilter()
    for handler in consoles:
        handler.addFilter(only)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(only)


def _rejection(state: State[Any]) -> BaseException | None:
    """The flow's quality rejection, when that is why it failed."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result cannot be read back: not something to explain here
        return None
    return exc if isinstance(exc, BaseException) and _is_rejection(exc) else None


def _outcome(out: Path, manifest: Path, *, since: float) -> RunOutcome | None:
    """What the run made (its result.json, written after `since`), read back after a rejection; None
    when this run wrote none."""
    from prefect_lipsync.manifest import read_manifest
    from prefect_lipsync.manifest.output_names import output_stem
    from prefect_lipsync.pipeline.outcome import RunOutcome

    loaded, _ = read_manifest(manifest)
    if loaded is None:
        return None
    name = output_stem(loaded.resolve(loaded.manifest.video), loaded.manifest.name)
    written = out / name / "result.json"
    try:
        if written.stat().st_mtime < since - 1.0:  # an earlier run's
            return None
        return RunOutcome.model_validate_json(written.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _rejection_line(outcome: RunOutcome, exc: BaseException, policy: str) -> str:
    """Why the run failed, in one plain line (the findings are printed above it)."""
    errors = [o.language for o in outcome.outputs if o.error]
    failed = [o.language for o in outcome.outputs if o.verdict == "fail"]
    total = len(outcome.outputs)
    if errors:
        return f"{len(errors)} of {total} languages ({', '.join(errors)}) did not produce an output."
    if failed and policy == "fail":
        return (
            f"quality checks failed for {', '.join(failed)} (policy fail): the outputs are in quarantine "
            "beside their reports; --quality-policy warn delivers them with the findings."
        )
    return str(exc).splitlines()[0] if str(exc) else REJECTION


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
    found = []
    for c in checks:
        if c.get("status") == "pass":
            continue
        value = "" if c.get("value") is None else f" = {c['value']}"
        threshold = f" (threshold {c['threshold']})" if c.get("threshold") else ""
        found.append(f"{c['status']} {c['name']}{value}{threshold}: {c['message']}")
    return found
