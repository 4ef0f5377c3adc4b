"""A corpus of bad manifests and bad media: each fails naming the exact place, and none gets past `plan`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from prefect_lipsync.cli import main
from prefect_lipsync.manifest import ManifestError, load_and_plan
from prefect_lipsync.media import synth

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "corpus" / "cases.yaml").read_text())


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    media = root / "media"
    synth.make_talking_card(media / "v25.mp4", duration=4.0, fps="25", size=(160, 90))
    synth.make_tone(media / "tone1.wav", duration=1.0)
    synth.make_tone(media / "tone3.wav", duration=3.0)
    noise = os.urandom(4096)
    (media / "corrupt.mp4").write_bytes(noise)
    (media / "corrupt.wav").write_bytes(noise)
    for case in CASES:
        for name, text in (case.get("files") or {}).items():
            (root / name).write_text(text)
        (root / f"{case['name']}.{case.get('format', 'yaml')}").write_text(case["manifest"])
    return root


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_manifest_fails_naming_the_place(case: dict[str, Any], corpus_dir: Path) -> None:
    manifest = corpus_dir / f"{case['name']}.{case.get('format', 'yaml')}"
    with pytest.raises(ManifestError) as exc:
        load_and_plan(manifest, audio_ops_dir=corpus_dir / "ops")
    expect = case["expect"]
    want_file = str(corpus_dir / expect["file"]) if "file" in expect else str(manifest)
    problems = exc.value.problems
    assert all(p.fix for p in problems), [str(p) for p in problems]

    def matches(p: Any) -> bool:
        return (
            p.file == want_file
            and p.line == expect.get("line")
            and p.language == expect.get("language")
            and p.line_id == expect.get("line_id")
            and ("field" not in expect or p.field == expect["field"])
            and expect["message"] in p.message
            and expect.get("fix", "") in (p.fix or "")
        )

    assert any(matches(p) for p in problems), "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_manifest_does_not_get_past_the_plan_command(
    case: dict[str, Any], corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = corpus_dir / f"{case['name']}.{case.get('format', 'yaml')}"
    code = main(["plan", str(manifest), "--json", "--audio-ops-dir", str(corpus_dir / "ops")])
    out, err = capsys.readouterr()
    assert code != 0
    assert out == ""
    assert case["expect"]["message"] in err and "Traceback" not in err
