"""Artifacts people read in the Prefect UI: jobs table, quality reports with pictures, progress, cost."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from prefect_lipsync.pipeline.destination import read_ref_bytes
from prefect_lipsync.quality.models import CheckResult
from prefect_lipsync.storage.errors import StorageError

if TYPE_CHECKING:
    from prefect_lipsync.pipeline import LanguageOutput, RunOutcome
    from prefect_lipsync.quality import QualityReport

# Pictures are inlined in markdown up to this size; bigger ones are linked by path.
INLINE_PICTURE_MAX_BYTES = 400_000
_ICONS = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail"}


def artifact_key(*parts: str) -> str:
    """Artifact keys take lowercase letters, digits and dashes only."""
    text = "-".join(parts).lower()
    cleaned = "".join(c if c.isalnum() else "-" for c in text)
    return "-".join(p for p in cleaned.split("-") if p)[:200]


#: Seconds between two writes of a progress bar; the last step is always written. The server stores
#: every write, and a night's batch would otherwise write one per job.
PROGRESS_EVERY_S = 10.0


class Progress:
    """A progress artifact that advances as jobs (or a batch's manifests) finish."""

    def __init__(
        self, artifact_id: UUID | None, total: int, *, unit: str = "jobs", every_s: float = PROGRESS_EVERY_S
    ) -> None:
        self.artifact_id, self.total, self.done = artifact_id, total, 0
        self.unit, self.every_s = unit, every_s
        self._last = ""
        self._written_done = 0
        self._written_at = time.monotonic()
        # Writes may run in the background and wait on a busy API: one at a time, each with the count
        # of when it is sent, so an older one never lands after a newer one.
        self._writing = asyncio.Lock()

    def step(self, description: str) -> bool:
        """Count one more done; True when the bar is due for a write (`flush`). Counting apart from
        writing keeps a retried write from counting twice."""
        self.done += 1
        self._last = description
        return self.done >= self.total or time.monotonic() - self._written_at >= self.every_s

    async def advance(self, description: str) -> None:
        if self.step(description):
            await self.flush()

    async def flush(self) -> None:
        """Write the bar if it moved since its last write."""
        if self.artifact_id is None:
            return
        async with self._writing:
            if self.done == self._written_done:
                return
            done, self._written_at = self.done, time.monotonic()
            await aupdate_progress_artifact(
                self.artifact_id,
                progress=100.0 * done / max(self.total, 1),
                description=f"{done}/{self.total} {self.unit} done; last: {self._last}",
            )
            self._written_done = done


async def create_progress(
    slug: str, total: int, *, kind: str = "lipsync-progress", unit: str = "jobs"
) -> Progress:
    artifact_id = await acreate_progress_artifact(
        progress=0.0, key=artifact_key(kind, slug), description=f"0/{total} {unit} done"
    )
    return Progress(artifact_id, total, unit=unit)


# Characters markdown (CommonMark + GFM) reads as syntax inside a line; a backslash makes each literal.
# `|` matters most: unescaped in a table cell it ends the cell (a threshold `|output - source| <= 0.1`
# split its row). Line-start syntax (#, -, 1.) cannot occur: escaped text never starts a line here.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def escape_markdown(text: object) -> str:
    """`text` as literal markdown inline text: syntax characters escaped, line breaks made spaces
    (a newline inside a table row would end the row)."""
    flat = " ".join(str(text).splitlines())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def code_span(text: object) -> str:
    """`text` as an inline code span (outside tables), fenced with more backticks than it contains."""
    flat = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {flat} {fence}"


def _value_text(value: float | int | bool | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _picture_markdown(path: str) -> str:
    """The picture inline (a local file or an object in storage), or its name when too big or gone."""
    name = PurePosixPath(path).name
    try:
        content = read_ref_bytes(path)
    except (OSError, StorageError):
        return code_span(path)
    if len(content) > INLINE_PICTURE_MAX_BYTES:
        return code_span(path)
    return f"![{escape_markdown(name)}](data:image/png;base64,{base64.b64encode(content).decode()})"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def report_markdown(language: str, report: QualityReport, pictures: Sequence[str]) -> str:
    verdict = _ICONS.get(report.verdict, escape_markdown(report.verdict))
    lines = [
        f"# Quality report: {escape_markdown(language)} — {verdict}",
        "",
        f"Output: {code_span(report.quarantined_to or report.output)}",
    ]
    if report.quarantined_to:
        lines += ["", "**Quarantined**: this output was moved aside and must not be delivered."]
    lines += ["", _row("check", "status", "value", "threshold", "finding"), _row(*["---"] * 5)]
    for check in report.checks:
        lines.append(
            _row(
                escape_markdown(check.name),
                _ICONS.get(check.status, escape_markdown(check.status)),
                escape_markdown(_value_text(check.value)),
                escape_markdown(check.threshold or ""),
                escape_markdown(check.message),
            )
        )
    for note in report.notes:
        lines += ["", f"_{escape_markdown(note)}_"]
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


def quality_findings_markdown(failing: Mapping[str, Sequence[CheckResult]]) -> str:
    """A markdown list of the failing checks of each language (language -> its failing checks), each
    with what was measured and the rule it broke: the findings of the approval form and of the logs.
    Checks that passed are left out if given."""
    lines = []
    for language, checks in failing.items():
        shown = [c for c in checks if c.status != "pass"]
        if not shown:
            lines.append(f"- **{escape_markdown(language)}**: no output (see the run's logs)")
            continue
        for check in shown:
            measured = _value_text(check.value)
            rule = f"threshold {escape_markdown(check.threshold)}" if check.threshold else "no threshold"
            value = f"value {escape_markdown(measured)}" if measured else "no value"
            lines.append(
                f"- **{escape_markdown(language)}** {escape_markdown(check.status)} "
                f"{code_span(check.name)}: {value}, {rule}. {escape_markdown(check.message)}"
            )
    return "\n".join(lines)


def failing_checks(outputs: Sequence[LanguageOutput]) -> dict[str, list[CheckResult]]:
    """Language -> the checks that failed, read from each output's quality report (JSON)."""
    failing: dict[str, list[CheckResult]] = {}
    for output in outputs:
        checks: list[CheckResult] = []
        if output.report:
            try:
                data = json.loads(read_ref_bytes(output.report))
                checks = [CheckResult.model_validate(c) for c in data.get("checks", [])]
            except (OSError, ValueError, StorageError):
                checks = []
        failing[output.language] = [c for c in checks if c.status == "fail"]
    return failing


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


async def publish_run_summary(
    slug: str,
    outputs: Sequence[LanguageOutput],
    *,
    estimated_cost_usd: float,
    offline: bool,
    with_cost: bool = True,
) -> None:
    """The jobs table of a run and (`with_cost`) its cost summary; a batch's manifests leave their
    cost to the batch's summary."""
    # Offline, the emulator's price is what the real service would charge, never money spent: the
    # column and the summary say so, and nothing is shown as charged.
    rows: list[dict[str, Any]] = []
    for o in outputs:
        money = (
            {"estimate_usd (emulator, not charged)": _money(_estimate(o))}
            if offline
            else {"cost_usd": _money(o.cost_usd)}
        )
        rows.append(
            {
                "language": o.language,
                "segments": o.segments,
                **money,
                "verdict": o.verdict or "",
                "output": o.output or o.quarantined_to or "",
                "error": o.error or "",
            }
        )
    await acreate_table_artifact(
        table=rows, key=artifact_key("lipsync-jobs", slug), description="One row per language of the run."
    )
    if with_cost:
        await _publish_cost(slug, outputs, estimated_cost_usd=estimated_cost_usd, offline=offline)


def _estimate(o: LanguageOutput) -> float | None:
    """What the service would charge (offline) or charged for one output."""
    return o.estimated_cost_usd if o.estimated_cost_usd is not None else o.cost_usd


async def _publish_cost(
    slug: str, outputs: Sequence[LanguageOutput], *, estimated_cost_usd: float, offline: bool
) -> None:
    if offline:
        would_charge = sum(_estimate(o) or 0.0 for o in outputs)
        rows_md = [
            _row("estimated before the run", f"{estimated_cost_usd:.2f}"),
            _row("what Runware would charge (emulator's price, an estimate)", f"{would_charge:.2f}"),
            _row("charged", "0.00"),
        ]
        note = "Local emulator: nothing was sent to Runware and nothing was paid."
    else:
        charged = sum(o.cost_usd or 0.0 for o in outputs)
        rows_md = [
            _row("estimated before the run", f"{estimated_cost_usd:.2f}"),
            _row("charged, as reported by Runware (includeCost)", f"{charged:.2f}"),
        ]
        note = "Charges as reported by Runware for each task."
    table = "\n".join([_row("", "USD"), _row("---", "---"), *rows_md])
    await acreate_markdown_artifact(
        markdown=f"# Cost summary\n\n{table}\n\n{note}\n",
        key=artifact_key("lipsync-cost", slug),
        description="Estimated and charged cost of the run.",
    )


class BatchReport:
    """What a batch shows of itself: a progress bar over its manifests and, at its end, one row per
    manifest (languages, verdicts, cost). The manifests it runs in its own process report here
    instead of writing a progress bar and a cost summary each: on a night's batch those were half
    the artifact writes, and a person follows the batch, then opens the manifest that needs a look."""

    def __init__(self, slug: str, progress: Progress, *, offline: bool) -> None:
        self.slug, self.progress, self.offline = slug, progress, offline
        self.outcomes: dict[str, RunOutcome] = {}

    def record(self, outcome: RunOutcome) -> None:
        """A manifest's outcome, told by its run."""
        self.outcomes[outcome.manifest] = outcome

    def manifest_done(self, manifest: str, status: str) -> bool:
        """Count a manifest as done; True when the progress bar is due for a write."""
        return self.progress.step(f"{PurePosixPath(manifest).name}: {status}")

    def rows(self, statuses: Mapping[str, str]) -> list[dict[str, Any]]:
        money_column = "estimate_usd (emulator, not charged)" if self.offline else "cost_usd"
        rows = []
        for manifest, status in statuses.items():
            outcome = self.outcomes.get(manifest)
            outputs = outcome.outputs if outcome else []
            if outcome is None:
                money = None
            elif self.offline:  # what the service would charge; nothing was
                estimates = [e for e in (_estimate(o) for o in outputs) if e is not None]
                money = sum(estimates) if estimates else None
            else:
                money = outcome.cost_usd  # as the service reported it
            rows.append(
                {
                    "manifest": manifest,
                    "status": status,
                    "languages": ", ".join(f"{o.language}: {o.verdict or 'error'}" for o in outputs),
                    "estimated_usd": _money(outcome.estimated_cost_usd) if outcome else "",
                    money_column: _money(money),
                }
            )
        return rows

    async def publish(self, statuses: Mapping[str, str]) -> None:
        """The batch's table: one row per manifest it ran, in the order given."""
        await self.progress.flush()
        if not statuses:
            return
        note = " Local emulator: nothing was paid." if self.offline else ""
        await acreate_table_artifact(
            table=self.rows(statuses),
            key=artifact_key("lipsync-batch", self.slug),
            description=f"One row per manifest of the batch: status, verdict of each language, cost.{note}",
        )
