"""Loading manifest files: YAML 1.1 traps avoided, every schema problem at once with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_lipsync.manifest import Manifest, ManifestError, load_manifest


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_scalars_are_read_as_a_manifest_means_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nvideo: v.mp4\nlanguages:\n  no:\n    lines:\n"
        "      - {id: 010, start: 01:00:04:12, end: 1:30, audio: a.wav, text: yes}\n",
    )
    loaded = load_manifest(path)
    # YAML 1.1 would read `no` as false, 01:00:04:12 and 1:30 as base-60 integers, `yes` as true.
    [line] = loaded.manifest.languages["no"].lines or []
    assert (line.id, line.start, line.end, line.text) == ("10", "01:00:04:12", "1:30", "yes")
    assert loaded.resolve("a.wav") == str(tmp_path / "a.wav")
    assert loaded.resolve("https://cdn.example.com/a.wav") == "https://cdn.example.com/a.wav"


def test_every_schema_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """version: 1
video: v.mp4
defaults:
  sync_mode: loop
  merge_gap: -1
languages:
  es:
    lines:
      - {id: a, start: 1, audio: a.wav}
      - {id: b, start: 2, end: 3, audio: b.wav, colour: red}
  fr: {}
""",
    )
    with pytest.raises(ManifestError) as exc:
        load_manifest(path)
    found = {(p.line, p.field, p.line_id) for p in exc.value.problems}
    assert found == {
        (4, "defaults.sync_mode", None),
        (5, "defaults.merge_gap", None),
        (9, "languages.es.lines[0].end", "a"),
        (10, "languages.es.lines[1].colour", "b"),
        (11, "languages.fr", None),
    }
    assert all(p.file == str(path) and p.fix for p in exc.value.problems)
    text = str(exc.value)
    assert text.startswith(f"manifest {path}: 5 problems") and f"{path}:9:" in text


def test_json_manifests_load_with_lines_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"version": 1, "video": "v.mp4",\n "languages": {"de": {"audio": "d.wav"}}}\n',
        name="m.json",
    )
    assert load_manifest(path).source.line_of(("languages", "de", "audio")) == 2


def test_every_manifest_field_has_a_description_for_the_ui() -> None:
    schema = Manifest.model_json_schema()
    models = [schema, *schema["$defs"].values()]
    for model in models:
        for name, field in model.get("properties", {}).items():
            # a field typed by a model may carry only its $ref: the model's docstring describes it
            ref = field.get("$ref", "").removeprefix("#/$defs/")
            described = field.get("description") or (ref and schema["$defs"][ref].get("description"))
            assert described, f"{model.get('title')}.{name} has no description"
