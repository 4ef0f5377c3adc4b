"""A manifest's subtitle file in the plan (encoding key, speaker rules, cues left out), face boxes, output names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from manifest_testkit import plan_data

from prefect_lipsync.manifest import Manifest, ManifestError, prepare
from prefect_lipsync.manifest.output_names import output_name, output_stem

SRT_CP1252 = """1
00:00:01,000 --> 00:00:02,000
Hélène: Règle numéro un: pas touche.

2
00:00:03,000 --> 00:00:04,000
[ríen emocionadas]

3
00:00:05,000 --> 00:00:06,000
ANNA: Très bien.
"""


def _manifest(language: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": 1, "video": "v.mp4", "languages": {"fr": language}, **extra}


def _audio(*indexes: int) -> dict[str, float]:
    return {f"fr/{i}.wav": 1.0 for i in indexes}


def test_a_manifest_names_the_subtitle_encoding_and_the_plan_lists_cues_left_out(tmp_path: Path) -> None:
    (tmp_path / "fr.srt").write_bytes(SRT_CP1252.encode("cp1252"))
    plan = plan_data(
        _manifest({"subtitles": "fr.srt", "encoding": "cp1252", "audio": "fr/{index}.wav"}),
        audio=_audio(1, 3),
        base=str(tmp_path),
    )
    job = plan.jobs[0]
    assert job.segment_lines == [["1"], ["3"]]
    assert [(d.line_id, d.reason.split(":")[0]) for d in job.dropped_lines] == [("2", "left out")]
    assert "(fr.srt:6)" in job.dropped_lines[0].reason
    assert (
        "fr.srt:6: cue 2 left out: non-speech cue '[ríen emocionadas]': nothing in it is said" in job.warnings
    )


def test_a_legacy_subtitle_file_without_encoding_is_a_problem_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "fr.srt").write_bytes(SRT_CP1252.encode("cp1252"))
    with pytest.raises(ManifestError) as exc:
        plan_data(
            _manifest({"subtitles": "fr.srt", "audio": "fr/{index}.wav"}),
            audio=_audio(1, 3),
            base=str(tmp_path),
        )
    (problem,) = exc.value.problems
    assert problem.file == str(tmp_path / "fr.srt") and problem.line == 3
    assert "not UTF-8" in problem.message
    assert problem.fix and problem.fix.startswith("add encoding: ") and "to languages.fr" in problem.fix


def test_speaker_rules_of_a_manifest_decide_the_cue_speakers(tmp_path: Path) -> None:
    (tmp_path / "fr.srt").write_text(SRT_CP1252, encoding="utf-8")
    speakers = {"Hélène": {"box": [0, 0, 40, 40]}, "ANNA": {"box": [50, 0, 90, 40]}}
    loaded = prepare(
        Manifest.model_validate(
            _manifest({"subtitles": "fr.srt", "audio": "fr/{index}.wav"}, speakers=speakers)
        ),
        base_dir=tmp_path,
    )
    assert [pl.speaker for pl in loaded.lines["fr"]] == ["Hélène", "ANNA"]
    off = prepare(
        Manifest.model_validate(
            _manifest({"subtitles": "fr.srt", "audio": "fr/{index}.wav", "speakers_from": []})
        ),
        base_dir=tmp_path,
    )
    assert [pl.line.speaker for pl in off.lines["fr"]] == [None, None]


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ({"subtitles": "fr.srt", "audio": "fr/{index}.wav", "encoding": "klingon"}, "unknown text encoding"),
        ({"audio": "fr.wav", "encoding": "cp1252"}, "only apply to a subtitles file"),
        ({"subtitles": "fr.srt", "audio": "fr/{index}.wav", "speakers_from": ["names"]}, "Input should be"),
    ],
)
def test_subtitle_options_are_checked(language: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Manifest.model_validate(_manifest(language))


# ---------------------------------------------------------------- face boxes and output names


def _lines(*speakers: str | None) -> list[dict[str, Any]]:
    out = []
    for i, who in enumerate(speakers):
        line: dict[str, Any] = {"start": 1.0 + 2 * i, "end": 2.0 + 2 * i, "audio": f"a{i}.wav"}
        if who:
            line["speaker"] = who
        out.append(line)
    return out


def _plan_lines(speakers: dict[str, Any] | None, *who: str | None) -> Any:
    data: dict[str, Any] = {"version": 1, "video": "v.mp4", "languages": {"es": {"lines": _lines(*who)}}}
    if speakers:
        data["speakers"] = speakers
    return plan_data(data, audio={f"a{i}.wav": 1.0 for i in range(len(who))}).jobs[0]


BOXES = {"ana": {"box": [10, 10, 50, 60]}, "bo": {"box": [100.7, 10, 150, 60.2]}}


def test_face_box_is_the_job_speakers_box() -> None:
    assert _plan_lines(BOXES, "bo", "bo").face_box == (100, 10, 150, 60)
    assert _plan_lines(BOXES, "ana").face_box == (10, 10, 50, 60)


def test_face_box_of_a_job_of_two_speakers_with_two_boxes_is_none() -> None:
    assert _plan_lines(BOXES, "ana", "bo").face_box is None


def test_face_box_falls_back_to_the_only_speaker_box() -> None:
    speakers = {"ana": {"box": [10, 10, 50, 60]}, "bo": {"auto": True}}
    assert _plan_lines(speakers, "bo").face_box == (10, 10, 50, 60)
    assert _plan_lines({"ana": {"point": {"x": 5, "y": 5}}}, None).face_box is None
    assert _plan_lines(None, None).face_box is None


def test_face_box_of_a_whole_track_job_is_its_speakers_box() -> None:
    data = {
        "version": 1,
        "video": "v.mp4",
        "speakers": BOXES,
        "languages": {"es": {"audio": "dub.wav", "speaker": "BO"}, "it": {"audio": "dub.wav"}},
    }
    plan = plan_data(data, audio={"dub.wav": 10.0})
    assert {j.language: j.face_box for j in plan.jobs} == {"es": (100, 10, 150, 60), "it": None}
    assert plan.to_json_dict()["jobs"][0]["face_box"] == [100, 10, 150, 60]


@pytest.mark.parametrize(
    ("video_ref", "name", "stem"),
    [
        ("/media/promo.mp4", None, "promo"),
        ("https://cdn.example.com/v/promo.final.mp4?sig=abc&exp=1", None, "promo.final"),
        ("https://cdn.example.com/", None, "video"),
        ("C:\\clips\\promo.mov", None, "promo"),
        ("https://cdn.example.com/v/promo.mp4", "spring", "spring"),
    ],
)
def test_output_stem_is_the_name_else_the_videos_stem(video_ref: str, name: str | None, stem: str) -> None:
    assert output_stem(video_ref, name) == stem
    assert output_name(video_ref, name, "es") == f"{stem}.es.mp4"


def test_the_planner_names_outputs_with_output_stem() -> None:
    data = {
        "version": 1,
        "video": "https://cdn.example.com/v/promo.mp4?sig=1",
        "languages": {"es": {"audio": "d.wav"}},
    }
    assert plan_data(data, audio={"d.wav": 10.0}).jobs[0].output_name == "promo.es.mp4"
