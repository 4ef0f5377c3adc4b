"""Artifacts people read in the Prefect UI: jobs table, quality reports with pictures, progress, cost."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

if TYPE_CHECKING:
    from prefect_lipsync.pipeline import LanguageOutput
    from prefect_lipsync.quality import QualityReport

# Pictures are inlined in markdown up to this size; bigger ones are linked by path.
INLINE_PICTURE_MAX_BYTES = 400_000
_ICONS = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail"}


def artifact_key(*parts: str) -> str:
    """Artifact keys take lowercase letters, digits and dashes only."""
    text = "-".join(parts).lower()
    cleaned = "".join(c if c.isalnum() else "-" for c in text)
    return "-".join(p for p in cleaned.split("-") if p)[:200]


class Progress:
    """A progress artifact that advances as jobs finish."""

    def __init__(self, artifact_id: UUID | None, total: int) -> None:
        self.artifact_id, self.total, self.done = artifact_id, total, 0

    async def advance(self, description: str) -> None:
        self.done += 1
        if self.artifact_id is not None:
            await aupdate_progress_artifact(
                self.artifact_id,
                progress=100.0 * self.done / max(self.total, 1),
                description=f"{self.done}/{self.total} jobs done; last: {description}",
            )


async def create_progress(slug: str, total: int) -> Progress:
    artifact_id = await acreate_progress_artifact(
        progress=0.0, key=artifact_key("lipsync-progress", slug), description=f"0/{total} jobs done"
    )
    return Progress(artifact_id, total)


def _picture_markdown(path: str) -> str:
    picture = Path(path)
    if picture.exists() and picture.stat().st_size <= INLINE_PICTURE_MAX_BYTES:
        data = base64.b64encode(picture.read_bytes()).decode()
        return f"![{picture.name}](data:image/png;base64,{data})"
    return f"`{picture}`"


def report_markdown(language: str, report: QualityReport, pictures: Sequence[str]) -> str:
    lines = [
        f"# Quality report: {language} — {_ICONS.get(report.verdict, report.verdict)}",
        "",
        f"Output: `{report.quarantined_to or report.output}`",
    ]
    if report.quarantined_to:
        lines += ["", "**Quarantined**: this output was moved aside and must not be delivered."]
    lines += ["", "| check | status | value | threshold | finding |", "|---|---|---|---|---|"]
    for check in report.checks:
        value = "" if check.value is None else str(check.value)
        lines.append(
            f"| {check.name} | {_ICONS.get(check.status, check.status)} | {value} | {check.threshold or ''} "
            f"| {check.message} |"
        )
    for note in report.notes:
        lines.append(f"\n_{note}_")
    if pictures:
        lines += ["", "## Pictures", ""] + [_picture_markdown(p) for p in pictures]
    return "\n".join(lines)


async def publish_quality_report(
    language: str, name: str, report: QualityReport, pictures: Sequence[str]
) -> None:
    await acreate_markdown_artifact(
        markdown=report_markdown(language, report, pictures),
        key=artifact_key("lipsync-quality", name, language),
        description=f"Quality report of {name} ({language}): {report.verdict}",
    )


def quality_findings_markdown(outputs: Sequence[LanguageOutput]) -> str:
    lines = []
    for output in outputs:
        lines.append(f"- **{output.language}** ({output.verdict}): report `{output.report}`")
    return "\n".join(lines)


async def publish_run_summary(
    slug: str, outputs: Sequence[LanguageOutput], *, estimated_cost_usd: float, offline: bool
) -> None:
    rows: list[dict[str, Any]] = [
        {
            "language": o.language,
            "segments": o.segments,
            "cost_usd": "" if o.cost_usd is None else f"{o.cost_usd:.2f}",
            "verdict": o.verdict or "",
            "output": o.output or o.quarantined_to or "",
            "error": o.error or "",
        }
        for o in outputs
    ]
    await acreate_table_artifact(
        table=rows, key=artifact_key("lipsync-jobs", slug), description="One row per language of the run."
    )
    spent = sum(o.cost_usd or 0.0 for o in outputs)
    note = (
        "Local emulator: nothing was paid; costs are what the emulator's price per second would charge."
        if offline
        else "Costs as reported by Runware (includeCost)."
    )
    await acreate_markdown_artifact(
        markdown=(
            f"# Cost summary\n\n| | USD |\n|---|---|\n| estimated before the run | {estimated_cost_usd:.2f} |\n"
            f"| reported by the service | {spent:.2f} |\n\n{note}\n"
        ),
        key=artifact_key("lipsync-cost", slug),
        description="Estimated and reported cost of the run.",
    )
