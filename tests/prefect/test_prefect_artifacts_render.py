"""Markdown artifacts render as meant: what markdown would misread (`|` in a threshold, newlines,
backticks, brackets) is escaped, so every table row keeps the header's cells and each cell its text.

Parsed with a real markdown parser (markdown-it-py, CommonMark + GFM tables). GFM silently drops the
cells of a row beyond the header's count, so the row's cells are counted with the parser's own
splitting rule on the row's source line as well.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from markdown_it import MarkdownIt
from markdown_it.rules_block.table import escapedSplit
from markdown_it.token import Token
from prefect.settings import PREFECT_API_URL

from prefect_lipsync.demo import build_demo
from prefect_lipsync.quality.models import CheckResult, QualityReport
from prefect_lipsync.tasks.report import failing_checks, quality_findings_markdown, report_markdown

MD = MarkdownIt("commonmark").enable("table")


def plain_text(inline: Token) -> str:
    """What a reader sees of an inline token: escapes resolved, code spans as their code."""
    parts = []
    for child in inline.children or []:
        if child.type in {"text", "code_inline"}:
            parts.append(child.content)
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append("\n")
        elif child.type == "image":
            parts.append(f"[image {child.attrs.get('src', '')!s:.22}]")
    return "".join(parts)


def tables(markdown: str) -> list[list[list[str]]]:
    """Every table of `markdown` as rows of cell texts (header first); asserts every row, counted by
    the parser's own cell splitting on its source line, has exactly the header's number of cells."""
    lines = markdown.splitlines()
    found: list[list[list[str]]] = []
    tokens = MD.parse(markdown)
    for i, token in enumerate(tokens):
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            assert token.map is not None
            source = lines[token.map[0]].strip()
            cells = escapedSplit(source)
            cells = cells[1:] if cells and cells[0] == "" else cells
            cells = cells[:-1] if cells and cells[-1] == "" else cells
            row: list[str] = []
            j = i + 1
            while tokens[j].type != "tr_close":
                if tokens[j].type == "inline":
                    row.append(plain_text(tokens[j]))
                j += 1
            found[-1].append(row)
            header = len(found[-1][0])
            assert len(cells) == header, f"row has {len(cells)} cells, header {header}: {source!r}"
    return found


AWKWARD = CheckResult(
    name="duration",
    status="fail",
    value=0.31234,
    threshold="|output - source| <= 0.100 s",
    message="Lasts `9.3 s`;\nthe source *9.0 s* | [see] <timeline> & notes_here",
)


def test_report_table_escapes_pipes_newlines_backticks_and_keeps_every_cell() -> None:
    report = QualityReport.from_checks(
        [
            AWKWARD,
            CheckResult(name="loudness", status="pass", value=-21.6, threshold="-23 ± 2 LUFS", message="ok"),
            CheckResult(name="streams", status="pass", value=None, threshold=None, message="One | two"),
        ],
        output="/out/we|ird `name`.mp4",
        source=None,
        notes=["face_ssim not run: no *face* box"],
    )
    markdown = report_markdown("es", report, [])
    (table,) = tables(markdown)
    header, *rows = table
    assert header == ["check", "status", "value", "threshold", "finding"]
    assert len(rows) == 3
    assert rows[0][0] == "duration" and rows[0][2] == "0.3123"
    assert rows[0][3] == "|output - source| <= 0.100 s"
    assert rows[0][4] == "Lasts `9.3 s`; the source *9.0 s* | [see] <timeline> & notes_here"
    assert rows[2][2] == "" and rows[2][3] == "" and rows[2][4] == "One | two"
    html = MD.render(markdown)
    assert "<em>" not in html.split("<table>")[1].split("</table>")[0]  # no stray emphasis in cells
    assert "<code>/out/we|ird `name`.mp4</code>" in html  # the path as code, whole
    assert "<em>face_ssim not run: no *face* box</em>" in html  # the note, italic, literal


def test_findings_name_each_failing_check_with_its_value_and_threshold(tmp_path: Path) -> None:
    findings = quality_findings_markdown(
        {
            "es": [AWKWARD, CheckResult(name="loudness", status="pass", value=-23.0, message="fine")],
            "de": [CheckResult(name="black_frames", status="fail", value=3, threshold="none", message="3 s")],
        }
    )
    html = MD.render(findings)
    assert html.count("<li>") == 2  # one item per failing check; the passing one is left out
    items = [plain_text(t) for t in MD.parse(findings) if t.type == "inline"]
    assert items[0].startswith("es fail duration: value 0.3123, threshold |output - source| <= 0.100 s.")
    assert items[1].startswith("de fail black_frames: value 3, threshold none.")
    assert "loudness" not in findings

    # From what a flow holds: the outputs, whose reports (JSON) name the checks.
    report = QualityReport.from_checks([AWKWARD], output="x.mp4", source=None)
    path = tmp_path / "x.mp4.report.json"
    path.write_text(report.model_dump_json())

    class Output:  # the two fields of LanguageOutput that failing_checks reads
        language, report = "es", str(path)

    failing = failing_checks([Output()])  # type: ignore[list-item]
    assert [c.name for c in failing["es"]] == ["duration"]


def read_artifacts(flow_run_id: str) -> list[dict[str, Any]]:
    body = {"limit": 200, "offset": 0, "sort": "KEY_ASC", "flow_runs": {"id": {"any_": [flow_run_id]}}}
    answer = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    answer.raise_for_status()
    return list(answer.json())


@pytest.mark.slow
async def test_every_markdown_artifact_of_a_demo_run_parses_with_whole_table_rows(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from prefect_lipsync.flows.localize import localize_video

    demo = tmp_path_factory.mktemp("demo-artifacts")
    build_demo(demo)
    manifest = tmp_path / "demo" / "manifest.yaml"
    shutil.copytree(demo, manifest.parent)
    out_dir = tmp_path / "out"
    state = await localize_video(manifest=str(manifest), out_dir=str(out_dir), return_state=True)
    assert state.is_completed(), state.message
    artifacts = read_artifacts(str(state.state_details.flow_run_id))
    markdowns = {a["key"]: a["data"] for a in artifacts if a["type"] == "markdown"}
    assert {"lipsync-cost-demo", "lipsync-quality-demo-es", "lipsync-quality-demo-de"} <= set(markdowns)
    for key, markdown in markdowns.items():
        assert tables(markdown), f"{key} has no table"
    for language in ("es", "de"):
        report = json.loads((out_dir / "demo" / f"demo.{language}.mp4.report.json").read_text())
        (table,) = tables(markdowns[f"lipsync-quality-demo-{language}"])
        rows = table[1:]
        assert len(rows) == len(report["checks"])
        for row, check in zip(rows, report["checks"], strict=True):
            # Every cell as the reader sees it: the threshold with its pipes, the finding whole.
            assert row[0] == check["name"]
            assert row[3] == (check["threshold"] or "")
            assert row[4] == check["message"]
        duration = next(r for r in rows if r[0] == "duration")
        assert duration[3].startswith("|output - source|")  # the row that lost its finding before
    # Offline, the emulator's price is an estimate of what Runware would charge, never money spent.
    (cost,) = tables(markdowns["lipsync-cost-demo"])
    charged = {row[0]: row[1] for row in cost[1:]}
    assert charged["charged"] == "0.00"
    assert any("estimate" in label and float(usd) > 0 for label, usd in charged.items())
    (jobs,) = (a for a in artifacts if a["key"] == "lipsync-jobs-demo")
    table = jobs["data"] if isinstance(jobs["data"], list) else json.loads(jobs["data"])
    assert table and all("cost_usd" not in row for row in table)
