"""Hostile manifests end fast with a clear error: size, alias bombs, nesting, huge numbers, unsafe names."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from prefect_lipsync.cli import main
from prefect_lipsync.manifest import ManifestError, load_manifest
from prefect_lipsync.manifest.errors import ManifestProblem
from prefect_lipsync.manifest.limits import MAX_BYTES_ENV, ManifestLimits
from prefect_lipsync.manifest.loader import read_manifest

HEAD = "version: 1\nvideo: v.mp4\n"
MEMORY_CAP = 16 * 1024 * 1024  # bytes allocated at the peak, far below what the attacks need


def refused(path: Path, limits: ManifestLimits | None = None) -> tuple[ManifestProblem, float, int]:
    """The one problem the file is refused with, the seconds and the peak bytes it took."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        loaded, problems = read_manifest(path, limits=limits)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded is None, "the manifest was accepted"
    assert len(problems) == 1, problems
    return problems[0], seconds, peak


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs: each level repeats the one before `width` times (9**9 nodes expanded)."""
    rows = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        rows.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]")
    return HEAD + "\n".join(rows) + f"\nlanguages:\n  es:\n    audio: *l{levels - 1}\n"


def test_an_alias_bomb_is_refused_at_once_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    problem, seconds, peak = refused(path)
    assert problem.file == str(path) and "aliases expand to more than" in problem.message
    assert "10000" in problem.message and problem.line is not None and problem.line <= 12
    assert problem.fix and "anchors" in problem.fix
    assert seconds < 1.0 and peak < MEMORY_CAP


def test_an_alias_that_contains_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(HEAD + "languages: &top\n  es: {audio: a.wav}\n  again: *top\n")
    problem, seconds, _ = refused(path)
    assert "loop" in problem.message and problem.line == 5 and seconds < 1.0


def test_a_few_anchors_for_shared_settings_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text(HEAD + "languages:\n  es: &track {audio: a.wav, sync_mode: bounce}\n  fr: *track\n")
    loaded = load_manifest(path)
    assert loaded.manifest.languages["fr"].sync_mode == "bounce"


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:  # 50 MB: a comment, so only the size can refuse it
        handle.write(HEAD.encode() + b"# " + b"x" * (50 * 1024 * 1024) + b"\n")
    problem, seconds, peak = refused(path)
    assert problem.file == str(path) and "larger than the limit of 4194304 bytes" in problem.message
    assert MAX_BYTES_ENV in (problem.fix or "")
    assert seconds < 1.0 and peak < MEMORY_CAP


def test_the_size_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + "languages:\n  es: {audio: a.wav}\n")
    problem, _, _ = refused(path, ManifestLimits(max_bytes=20))
    assert "limit of 20 bytes" in problem.message
    monkeypatch.setenv(MAX_BYTES_ENV, "30")
    problem, _, _ = refused(path)
    assert "limit of 30 bytes" in problem.message
    monkeypatch.setenv(MAX_BYTES_ENV, "100000")
    assert load_manifest(path).manifest.languages["es"].audio == "a.wav"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", HEAD + "languages:\n  es:\n    audio: " + "[" * 100_000 + "]" * 100_000 + "\n"),
        ("deep_block.yaml", HEAD + "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "x: 1\n"),
        (
            "deep.json",
            '{"version": 1, "video": "v.mp4",\n "languages": ' + "[" * 100_000 + "]" * 100_000 + "}",
        ),
        ("deep_maps.json", '{"version": 1,\n "x": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"),
    ],
)
def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    problem, seconds, peak = refused(path)
    assert problem.file == str(path) and "nesting is deeper than the limit of 32 levels" in problem.message
    assert problem.line is not None and seconds < 1.0 and peak < MEMORY_CAP


def test_deep_nesting_through_aliases_is_refused(tmp_path: Path) -> None:
    rows = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 40)]
    path = tmp_path / "deep_alias.yaml"
    path.write_text(HEAD + "\n".join(rows) + "\nlanguages: {es: {audio: a.wav}}\n")
    problem, _, _ = refused(path)
    assert "nesting is deeper" in problem.message and "aliases expanded" in problem.message


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_a_5000_digit_number_is_refused_with_its_line(tmp_path: Path, suffix: str) -> None:
    digits = "9" * 5000
    path = tmp_path / f"number.{suffix}"
    if suffix == "yaml":
        path.write_text(HEAD + f"defaults:\n  merge_gap: {digits}\nlanguages: {{es: {{audio: a.wav}}}}\n")
        line = 4
    else:
        path.write_text('{"version": 1,\n"video": "v.mp4",\n"defaults": {"merge_gap": ' + digits + "}}")
        line = 3
    problem, seconds, _ = refused(path)
    assert "a number of 5000 characters is longer than the limit of 40" in problem.message
    assert problem.line == line and problem.file == str(path) and seconds < 1.0


def test_a_long_quoted_text_is_not_a_number(tmp_path: Path) -> None:
    path = tmp_path / "text.yaml"
    path.write_text(HEAD + f'name: "{"1" * 60}"\nlanguages: {{es: {{audio: a.wav}}}}\n')
    assert load_manifest(path).manifest.name == "1" * 60


def _problems(path: Path) -> list[ManifestProblem]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return info.value.problems


@pytest.mark.parametrize(
    ("field", "line", "snippet"),
    [
        ("name", 3, 'name: "promo\\nx"\nlanguages: {es: {audio: a.wav}}\n'),
        ("name", 3, 'name: "../../x"\nlanguages: {es: {audio: a.wav}}\n'),
        ("name", 3, 'name: "a/b"\nlanguages: {es: {audio: a.wav}}\n'),
        ("name", 3, 'name: "promo..final"\nlanguages: {es: {audio: a.wav}}\n'),
        ("languages", 3, 'languages:\n  "es\\n": {audio: a.wav}\n'),
        ("languages", 3, 'languages:\n  "../es": {audio: a.wav}\n'),
        (
            "languages.es.lines[0].id",
            6,
            'languages:\n  es:\n    lines:\n      - {id: "l1\\n", start: 0, end: 1, audio: a.wav}\n',
        ),
        (
            "languages.es.lines[0].speaker",
            6,
            'languages:\n  es:\n    lines:\n      - {id: l1, start: 0, end: 1, audio: a.wav, speaker: "x/y"}\n',
        ),
        ("languages.es.speaker", 5, 'languages:\n  es:\n    speaker: "..\\\\bob"\n    audio: a.wav\n'),
        ("speakers", 3, 'speakers:\n  "an\\nna": {auto: true}\nlanguages: {es: {audio: a.wav}}\n'),
    ],
)
def test_unsafe_names_are_refused_with_their_field_and_line(
    tmp_path: Path, field: str, line: int, snippet: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + snippet)
    [problem] = _problems(path)
    assert (problem.field, problem.line, problem.file) == (field, line, str(path))
    assert "cannot be used in a file name" in problem.message and "\n" not in problem.message
    assert problem.fix


def test_unsafe_names_in_json_are_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"version": 1, "video": "v.mp4", "languages": {"es\n": {"audio": "a.wav"}}}))
    [problem] = _problems(path)
    assert problem.field == "languages" and "cannot be used in a file name" in problem.message


def test_an_unsafe_subtitle_cue_id_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "it.vtt").write_text(
        "WEBVTT\n\nintro\n00:00:00.000 --> 00:00:01.000\nCiao\n\n../../evil\n00:00:01.000 --> 00:00:02.000\nOla\n"
    )
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + 'languages:\n  it: {subtitles: it.vtt, audio: "it/{id}.wav"}\n')
    [problem] = _problems(path)
    assert problem.file == str(tmp_path / "it.vtt") and problem.line is not None and problem.line >= 7
    assert problem.field == "cue 2 id" and "cannot be used in a file name" in problem.message


@pytest.mark.parametrize("make", [alias_bomb, lambda: HEAD + "x: " + "[" * 50_000 + "\n"])
def test_the_plan_command_exits_non_zero_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[], str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(make())
    code = main(["plan", str(path), "--json", "--audio-ops-dir", str(tmp_path / "ops")])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert str(path) in err and "limit" in err and "Traceback" not in err


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_too_many_values_are_refused_before_parsing(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"dense.{suffix}"
    values = ",".join(["1"] * 5000)
    if suffix == "yaml":
        path.write_text(HEAD + f"x: [{values}]\nlanguages: {{es: {{audio: a.wav}}}}\n")
    else:
        path.write_text('{"version": 1, "video": "v.mp4",\n"x": [' + values + "]}")
    problem, _, _ = refused(path, ManifestLimits(max_nodes=1000))
    assert "more than the limit of 1000 values" in problem.message and problem.line == 3 - (suffix == "json")
    assert problem.fix and "split" in problem.fix
