"""`prefect-lipsync check OUTPUT --source SOURCE [--plan PLAN.json] [--language LANG] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.quality.models import QualityReport


class PlanError(Exception):
    """The plan file cannot be used; the message says why."""


def plan_job(plan_path: Path, language: str | None) -> dict[str, Any]:
    """The job for `language` in a `plan --json` file (or its only job): its `request`, optional `face_box`."""
    try:
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"{plan_path}: cannot read the plan: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise PlanError(f"{plan_path}: line {exc.lineno}: not JSON ({exc.msg})") from exc
    jobs = plan.get("jobs") if isinstance(plan, dict) else None
    if not isinstance(jobs, list) or not jobs:
        raise PlanError(
            f"{plan_path}: the plan has no jobs (expected the output of `prefect-lipsync plan --json`)"
        )
    if language is None:
        if len(jobs) != 1:
            languages = ", ".join(str(j.get("language")) for j in jobs if isinstance(j, dict))
            raise PlanError(
                f"{plan_path}: the plan has {len(jobs)} jobs ({languages}); pick one with --language"
            )
        chosen = jobs[0]
    else:
        matches = [j for j in jobs if isinstance(j, dict) and j.get("language") == language]
        if not matches:
            languages = ", ".join(str(j.get("language")) for j in jobs if isinstance(j, dict))
            raise PlanError(f"{plan_path}: no job for language {language!r} (the plan has: {languages})")
        chosen = matches[0]
    request = chosen.get("request") if isinstance(chosen, dict) else None
    if not isinstance(request, dict):
        raise PlanError(f"{plan_path}: the job has no 'request' object")
    box = chosen.get("face_box")
    if box is not None and not _is_box(box):
        raise PlanError(
            f"{plan_path}: job {chosen.get('language')!r}: 'face_box' must be [x1, y1, x2, y2] in pixels "
            f"with x2 > x1 and y2 > y1, got {box!r}"
        )
    return dict(chosen)


def _is_box(value: Any) -> bool:
    numbers = isinstance(value, list) and len(value) == 4
    numbers = numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    return bool(numbers and value[2] > value[0] and value[3] > value[1])


def job_request(plan_path: Path, language: str | None) -> dict[str, Any]:
    """The sync-3 request of the job for `language` in a `plan --json` file (or of its only job)."""
    request: dict[str, Any] = plan_job(plan_path, language)["request"]
    return request


def report_json(report: QualityReport) -> dict[str, Any]:
    return {
        "verdict": report.verdict,
        "checks": [
            {
                "name": c.name,
                "status": c.status,
                "value": c.value,
                "threshold": c.threshold,
                "message": c.message,
            }
            for c in report.checks
        ],
        "notes": report.notes,
        "quarantined_to": report.quarantined_to,
        "face": {"source": report.face_source, "face_box": report.face_box, "mouth_box": report.mouth_box},
        "lipsync": [
            {"segment": s.label, "lag_ms": s.lag_ms, "confidence": s.confidence, "status": s.status}
            for s in report.lipsync
        ],
    }


def report_table(report: QualityReport) -> str:
    rows = [("check", "status", "value", "threshold", "message")]
    rows += [
        (c.name, c.status, "" if c.value is None else str(c.value), c.threshold or "", c.message)
        for c in report.checks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  -------")
    lines.append("")
    lines.append(f"verdict: {report.verdict.upper()}  ({report.output})")
    if report.face_source:
        lines.append(f"face: {report.face_source}")
    lines += [
        f"lip sync: {s.label}: lag {s.lag_ms:+.0f} ms, confidence {s.confidence:.2f} ({s.status})"
        for s in report.lipsync
    ]
    lines += [f"note: {note}" for note in report.notes]
    if report.quarantined_to:
        lines.append(f"quarantined to: {report.quarantined_to}")
    return "\n".join(lines)


def _run_check(args: argparse.Namespace) -> int:
    from prefect_lipsync.quality.planned import check_planned_output

    output, source = Path(args.output), Path(args.source)
    for label, path in (("output", output), ("source", source)):
        if not path.exists():
            print(f"prefect-lipsync check: {label} {path} does not exist", file=sys.stderr)
            return 2
    try:
        # The same entry point as the flow: the same checks, face box included, the same verdict.
        job = plan_job(Path(args.plan), args.language) if args.plan else {}
        report = check_planned_output(output, source, job, nsfw_flag=None, lipsync_expected=not args.emulator)
    except PlanError as exc:
        print(f"prefect-lipsync check: {exc}", file=sys.stderr)
        return 2
    except MediaError as exc:
        print(f"prefect-lipsync check: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report_json(report), indent=2) if args.json else report_table(report))
    return 1 if report.verdict == "fail" else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="Check a lip-synced output against its source (and plan).",
        description="Run the quality checks on OUTPUT; exit 0 unless the verdict is fail.",
    )
    parser.add_argument("output", metavar="OUTPUT", help="The lip-synced video to check.")
    parser.add_argument("--source", required=True, help="The source video it was made from.")
    parser.add_argument(
        "--plan",
        help="The planner's `plan --json` output, for segments, submitted audio and the face box.",
    )
    parser.add_argument("--language", help="Which job of the plan (needed when it has several).")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON instead of a table.")
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="The output came from the local emulator: an unmoved mouth only warns.",
    )
    parser.set_defaults(handler=_run_check)
