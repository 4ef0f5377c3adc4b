"""SRT and WebVTT files: exact fractional times, speakers from voices and prefixes, `manifest import`."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from prefect_lipsync.cli import main
from prefect_lipsync.manifest import load_manifest
from prefect_lipsync.manifest.subtitles import parse_srt, parse_vtt, split_speaker

SRT = """1
00:00:01,500 --> 00:00:03,250
[Anna] Hola amigos

2
00:00:04,040 --> 00:00:06,999
Bob: ¿Qué tal?

3
00:01:02,005 --> 00:01:03,100
Sin hablante
"""

VTT = """WEBVTT

intro
00:00:01.500 --> 00:00:03.250
<v Anna>Hola amigos</v>

00:04.040 --> 00:06.999
<v.loud Bob>¿Qué tal?
y más

00:01:02.005 --> 00:01:03.100
Carla: Sin voz
"""


@pytest.mark.parametrize(
    ("text", "speaker", "rest"),
    [
        ("[Anna] Hola", "Anna", "Hola"),
        ("Bob Smith: Hi there", "Bob Smith", "Hi there"),
        ("No speaker here", None, "No speaker here"),
        ("10:30 is the time", None, "10:30 is the time"),
    ],
)
def test_speaker_prefixes_are_split_from_the_text(text: str, speaker: str | None, rest: str) -> None:
    assert split_speaker(text) == (speaker, rest)


def test_srt_keeps_fractional_seconds_speakers_and_cue_lines() -> None:
    cues = parse_srt(SRT)
    assert [(c.start, c.end) for c in cues] == [
        (Fraction(3, 2), Fraction(13, 4)),
        (Fraction(404, 100), Fraction(6999, 1000)),
        (Fraction(62005, 1000), Fraction(631, 10)),
    ]
    assert [(c.speaker, c.text) for c in cues] == [
        ("Anna", "Hola amigos"),
        ("Bob", "¿Qué tal?"),
        (None, "Sin hablante"),
    ]
    assert [c.line for c in cues] == [2, 6, 10]


def test_webvtt_keeps_fractional_seconds_voices_and_ids() -> None:
    cues = parse_vtt(VTT)
    # webvtt-py's start_in_seconds would give 1, 4, 62: the exact times come from the milliseconds.
    assert [(c.start, c.end) for c in cues] == [
        (Fraction(3, 2), Fraction(13, 4)),
        (Fraction(404, 100), Fraction(6999, 1000)),
        (Fraction(62005, 1000), Fraction(631, 10)),
    ]
    assert [(c.id, c.speaker, c.text) for c in cues] == [
        ("intro", "Anna", "Hola amigos"),
        ("2", "Bob", "¿Qué tal?\ny más"),
        ("3", "Carla", "Sin voz"),
    ]
    assert [c.line for c in cues] == [4, 7, 11]


@pytest.mark.parametrize(("name", "text"), [("promo.es.srt", SRT), ("promo.es.vtt", VTT)])
def test_manifest_import_writes_a_manifest_that_loads_with_the_same_times(
    name: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = tmp_path / "subs" / name
    subs.parent.mkdir()
    subs.write_text(text)
    out = tmp_path / "out" / "m.yaml"
    code = main(
        [
            "manifest",
            "import",
            str(subs),
            "--video",
            str(tmp_path / "v.mp4"),
            "--audio",
            str(tmp_path / "es" / "{index:03d}.wav"),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "3 lines" in capsys.readouterr().out
    loaded = load_manifest(out)
    assert loaded.manifest.video == "../v.mp4"
    lines = loaded.manifest.languages["es"].lines or []
    assert [(line.start, line.end) for line in lines] == [(1.5, 3.25), (4.04, 6.999), (62.005, 63.1)]
    assert [line.speaker for line in lines][:2] == ["Anna", "Bob"]
    assert [line.audio for line in lines] == ["../es/001.wav", "../es/002.wav", "../es/003.wav"]
    assert loaded.resolve(lines[0].audio) == str(tmp_path / "es" / "001.wav")
    assert not list(out.parent.glob(".*.tmp"))  # written atomically: no temp file left behind


def test_manifest_import_of_a_broken_file_fails_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = tmp_path / "bad.vtt"
    subs.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nok\n\n00:00:03,000 --> 00:00:04,000\nbroken\n")
    code = main(["manifest", "import", str(subs), "--video", "v.mp4", "--audio", "{index}.wav"])
    err = capsys.readouterr().err
    assert code == 1 and f"{subs}:6" in err and "Traceback" not in err


def test_manifest_import_refuses_a_bad_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    subs = tmp_path / "it.srt"
    subs.write_text(SRT)
    assert main(["manifest", "import", str(subs), "--video", "v.mp4", "--audio", "it/{n}.wav"]) == 1
    assert "unknown field" in capsys.readouterr().err
