"""A corpus of real-world-shaped subtitle files, each read as `srt` / `webvtt-py` read it, or refused with its line.

The files are made here, byte for byte: byte-order marks in every UTF encoding, legacy code pages
(Windows-1252, GB2312), speaker labels and sentences with colons in several languages, sound
descriptions and music, untimed blocks, malformed timing lines, CR and CRLF line ends.
For every file that imports, each cue the subtitle library reads is either one of ours, with
the same id and exact times, or reported in the notes (with its line) as left out or dropped.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest
import srt
import webvtt

from prefect_lipsync.cli import main
from prefect_lipsync.manifest.subtitle_speakers import NO_SPEAKER_RULES
from prefect_lipsync.manifest.subtitles import (
    SubtitleEncodingError,
    SubtitleError,
    read_subtitle_file,
)

DIALOGUE_ES = """1
00:00:01,000 --> 00:00:02,500
ANNA: Hola, ¿qué tal?

2
00:00:03,000 --> 00:00:04,200
[ríen emocionadas]

3
00:00:04,500 --> 00:00:06,000
Bob: Muy bien, gracias.

4
00:00:06,500 --> 00:00:08,000
Regla número uno: no tocar nada.
"""

DIALOGUE_FR_VTT = """WEBVTT

1
00:00:01.000 --> 00:00:02.500
<v Marie>Règle numéro un: pas touche.</v>

2
00:00:03.000 --> 00:00:04.000
J'ai dit: ça suffit!

3
00:00:04.500 --> 00:00:06.000
♪ Frère Jacques, dormez-vous ♪

4
00:00:06.500 --> 00:00:08.000
- PIERRE: Salut.
- MARIE: Bonjour.
"""

LEGACY_FR = """1
00:00:01,000 --> 00:00:02,500
Règle numéro un: pas touche à la caméra.

2
00:00:03,000 --> 00:00:04,000
Hélène: J'ai dit: ça suffit, très bien!

3
00:00:04,500 --> 00:00:06,000
(soupire) Où étiez-vous? « Déjà » à l'été, 5 €.
"""

LEGACY_ES = """1
00:00:01,000 --> 00:00:02,500
¿Qué pasó? Señor Muñoz, ¡cuidado con el niño!

2
00:00:03,000 --> 00:00:04,000
Señora: El niño está aquí, mañana también, sí.
"""

CHINESE = """1
00:00:01,000 --> 00:00:02,500
你好，欢迎来到我们的节目。

2
00:00:03,000 --> 00:00:04,000
李明：今天天气很好，我们去公园吧。

3
00:00:04,500 --> 00:00:06,000
（笑声）

4
00:00:06,500 --> 00:00:08,000
王芳：好的，我马上就来。
"""

STREAMING_DE_VTT = """WEBVTT
Kind: captions

NOTE exported by a streaming tool

\x20\x20\x20

STYLE
::cue { color: white }

00:00:01.000 --> 00:00:02.000 line:90%
<v Dr. Müller>Guten Tag.</v>

00:00:02.500 --> 00:00:03.500
[Musik]

00:00:04.000 --> 00:00:05.000
Das Problem: wir haben keine Zeit.

this block has no timing line

00:00:05.500 --> 00:00:07.000
<v Anna>Ja.</v>
<v Jonas>Nein.</v>

00:00:07.500 --> 00:00:08.000
<i>Dr. Müller:</i> Genau.
"""

UNTIMED_EN = """1
00:00:01,000 --> 00:00:02,000
Note: this is a sentence, not a speaker.

a stray block without timing

2
00:00:03,000 --> 00:00:04,000
JOHN SMITH: Remember: we leave at 10:30.

3
00:00:04,500 --> 00:00:05,500
[Laughs] Okay, okay.

4
00:00:06,000 --> 00:00:07,000
[John] (whispers) Over here.

5
00:00:07,500 --> 00:00:08,000

6
00:00:08,500 --> 00:00:09,000
SARAH: [coughs]
"""


@dataclass(frozen=True)
class Case:
    """One corpus file: its text, how it is stored, and what reading it must give."""

    name: str
    text: str
    stored_as: str  # a codec name; "utf-8-sig", "utf-16" ... write a byte-order mark
    encoding: str | None = None  # what is passed as --encoding
    speakers: dict[str, str | None] = field(default_factory=dict)  # cue id -> speaker
    texts: dict[str, str] = field(default_factory=dict)  # cue id -> text
    notes: list[tuple[int, str]] = field(default_factory=list)  # (line, action) of every note
    newline: str = "\n"

    @property
    def filename(self) -> str:
        return self.name + (".vtt" if self.text.startswith("WEBVTT") else ".srt")

    def data(self) -> bytes:
        return self.text.replace("\n", self.newline).encode(self.stored_as)


ES = {"1": "ANNA", "3": "Bob", "4": None}
ES_NOTES = [(6, "left out")]
FR = {"1": "Marie", "2": None, "4": None}
FR_NOTES = [(12, "left out"), (16, "no speaker")]

READABLE = [
    Case("es_utf8", DIALOGUE_ES, "utf-8", speakers=ES, notes=ES_NOTES),
    Case("es_utf8_bom", DIALOGUE_ES, "utf-8-sig", speakers=ES, notes=ES_NOTES),
    Case("es_utf16le_bom", DIALOGUE_ES, "utf-16-le", speakers=ES, notes=ES_NOTES),  # mark added below
    Case("es_utf16be_bom_crlf", DIALOGUE_ES, "utf-16-be", speakers=ES, notes=ES_NOTES, newline="\r\n"),
    Case("es_utf32le_bom", DIALOGUE_ES, "utf-32-le", speakers=ES, notes=ES_NOTES),
    Case("fr_utf32be_bom", DIALOGUE_FR_VTT, "utf-32-be", speakers=FR, notes=FR_NOTES),
    Case("fr_utf16le_bom_cr", DIALOGUE_FR_VTT, "utf-16-le", speakers=FR, notes=FR_NOTES, newline="\r"),
    Case("fr_utf8_bom", DIALOGUE_FR_VTT, "utf-8-sig", speakers=FR, notes=FR_NOTES),
    Case(
        "fr_cp1252",
        LEGACY_FR,
        "cp1252",
        encoding="cp1252",
        speakers={"1": None, "2": "Hélène", "3": None},
        texts={
            "1": "Règle numéro un: pas touche à la caméra.",
            "2": "J'ai dit: ça suffit, très bien!",
            "3": "Où étiez-vous? « Déjà » à l'été, 5 €.",
        },
    ),
    Case("es_cp1252", LEGACY_ES, "cp1252", encoding="windows-1252", speakers={"1": None, "2": "Señora"}),
    Case(
        "zh_gb2312",
        CHINESE,
        "gb2312",
        encoding="gb2312",
        speakers={"1": None, "2": None, "4": None},  # no letter case: a name cannot be told from a word
        texts={"2": "李明：今天天气很好，我们去公园吧。"},
        notes=[(10, "left out")],
    ),
    Case(
        "de_streaming",
        STREAMING_DE_VTT,
        "utf-8",
        speakers={"1": "Dr. Müller", "3": None, "4": None, "5": "Dr. Müller"},
        texts={"3": "Das Problem: wir haben keine Zeit.", "5": "Genau."},
        notes=[(14, "left out"), (20, "dropped"), (22, "no speaker")],  # whitespace alone is no block
    ),
    Case(
        "en_untimed",
        UNTIMED_EN,
        "utf-8",
        speakers={"1": None, "2": "JOHN SMITH", "3": None, "4": "John"},
        texts={
            "1": "Note: this is a sentence, not a speaker.\na stray block without timing",
            "2": "Remember: we leave at 10:30.",
            "3": "Okay, okay.",
            "4": "Over here.",
        },
        notes=[(5, "merged"), (20, "dropped"), (23, "left out")],
    ),
]
_BOM_OF = {
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}


def write_case(case: Case, folder: Path) -> Path:
    path = folder / case.filename
    mark = _BOM_OF.get(case.stored_as, b"") if case.name.endswith(("_bom", "_bom_crlf", "_bom_cr")) else b""
    path.write_bytes(mark + case.data())
    return path


def library_cues(path: Path, encoding: str) -> list[tuple[str, Fraction, Fraction]]:
    """(id, start, end) of every cue as the subtitle library reads the file."""
    if path.suffix == ".vtt":
        return [
            (
                c.identifier or str(n + 1),
                Fraction(c.start_time.in_milliseconds(), 1000),
                Fraction(c.end_time.in_milliseconds(), 1000),
            )
            for n, c in enumerate(webvtt.read(str(path), encoding=encoding).captions)
        ]
    text = path.read_bytes().decode(encoding).removeprefix("\ufeff")
    out = []
    for sub in srt.parse(text):
        start = Fraction(sub.start.seconds) + Fraction(sub.start.microseconds, 10**6)
        end = Fraction(sub.end.seconds) + Fraction(sub.end.microseconds, 10**6)
        out.append((str(sub.index), start, end))
    return out


def _codec_for_library(case: Case) -> str:
    # The libraries are told the encoding a person would tell them (webvtt-py finds marks itself).
    if case.stored_as in _BOM_OF:
        return case.stored_as.rsplit("-", 1)[0]  # "utf-16": Python's codec reads the mark
    return case.encoding or case.stored_as


@pytest.mark.parametrize("case", READABLE, ids=[c.name for c in READABLE])
def test_each_file_reads_as_its_subtitle_library_reads_it(case: Case, tmp_path: Path) -> None:
    path = write_case(case, tmp_path)
    read = read_subtitle_file(path, encoding=case.encoding)
    ours = {c.id: c for c in read.cues}
    reported = {n.cue_id: n for n in read.notes if n.cue_id is not None}
    theirs = library_cues(path, _codec_for_library(case))
    assert theirs, "the library reads cues"
    for cue_id, start, end in theirs:
        if cue_id in ours:
            assert (ours[cue_id].start, ours[cue_id].end) == (start, end)
        else:  # not one of ours: then it is reported, with its line and why
            assert reported[cue_id].action in ("left out", "dropped"), read.notes
    assert set(ours) | {i for i, n in reported.items() if n.action != "no speaker"} == {t[0] for t in theirs}
    assert [(n.line, n.action) for n in read.notes] == case.notes, [str(n) for n in read.notes]
    assert {i: ours[i].speaker for i in case.speakers} == case.speakers
    for cue_id, text in case.texts.items():
        assert ours[cue_id].text == text


@pytest.mark.parametrize(
    ("stored_as", "mark"),
    [
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-32-be", codecs.BOM_UTF32_BE),
    ],
)
def test_a_byte_order_mark_decides_the_encoding(stored_as: str, mark: bytes, tmp_path: Path) -> None:
    path = tmp_path / "x.srt"
    path.write_bytes(mark + DIALOGUE_ES.encode(stored_as))
    read = read_subtitle_file(path)
    assert (read.encoding, read.bom) == (stored_as, True)
    assert read.cues[0].text == "Hola, ¿qué tal?"
    # The mark wins over a named encoding (as in WHATWG's rules and webvtt-py), and the report says so.
    named = read_subtitle_file(path, encoding="cp1252")
    assert named.encoding == stored_as and named.encoding_note and "byte-order mark" in named.encoding_note


def _first_line_with(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.split("\n"), start=1) if needle in line)


@pytest.mark.parametrize(
    ("text", "stored_as", "needle", "family"),
    [
        (LEGACY_FR, "cp1252", "Règle", None),  # a short French file: charset-normalizer names a cousin
        (LEGACY_ES, "cp1252", "pasó", {"cp1252"}),
        (CHINESE, "gb2312", "你好", {"gb2312", "gbk", "gb18030"}),
    ],
)
def test_a_legacy_file_without_an_encoding_is_refused_naming_the_likely_one(
    text: str, stored_as: str, needle: str, family: set[str] | None, tmp_path: Path
) -> None:
    path = tmp_path / "legacy.srt"
    path.write_bytes(text.encode(stored_as))
    with pytest.raises(SubtitleEncodingError) as exc:
        read_subtitle_file(path)
    err = exc.value
    assert err.line == _first_line_with(text, needle)
    assert "not UTF-8" in str(err) and "charset-normalizer" in str(err)
    assert err.guesses, "a likely encoding is named"
    assert family is None or err.guesses[0] in family, err.guesses
    assert err.guesses[0] in str(err)
    assert err.fix.startswith(f"--encoding {err.guesses[0]}")
    path.read_bytes().decode(err.guesses[0])  # the encoding named does decode the file


def test_a_utf8_file_read_in_a_code_page_as_asked_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "x.srt"
    path.write_text(DIALOGUE_ES, encoding="utf-8")
    read = read_subtitle_file(path, encoding="cp1252")
    assert read.encoding == "cp1252" and read.encoding_note and "valid UTF-8 too" in read.encoding_note


def test_a_file_that_is_not_the_encoding_given_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "x.srt"
    path.write_bytes(LEGACY_ES.encode("cp1252"))
    with pytest.raises(SubtitleEncodingError) as exc:
        read_subtitle_file(path, encoding="utf-8")
    assert exc.value.line == 3 and "not valid utf-8, as the encoding given says" in str(exc.value)


def test_utf16_without_a_mark_is_refused_not_read_as_nul_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.srt"
    path.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nHello\n".encode("utf-16-le"))
    with pytest.raises(SubtitleEncodingError) as exc:
        read_subtitle_file(path)
    assert (
        exc.value.line == 1 and "NUL" in str(exc.value) and "utf_16" in exc.value.guesses[0].replace("-", "_")
    )


def test_an_unknown_encoding_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.srt"
    path.write_text(DIALOGUE_ES)
    with pytest.raises(SubtitleError, match="unknown text encoding 'klingon'"):
        read_subtitle_file(path, encoding="klingon")


def _looks_timed(line: str) -> bool:
    return line[:2].isdigit() and ":" in line and ("-" in line or "=" in line or "–" in line)


MALFORMED = [
    (
        "srt_arrow_mid_file",
        DIALOGUE_ES.replace("00:00:04,500 --> 00:00:06,000", "00:00:04,500 -> 00:00:06,000"),
        9,
    ),
    ("srt_en_dash", DIALOGUE_ES + "\n5\n00:00:09,000 – 00:00:10,000\nFin.\n", 17),
    ("srt_first_cue", "1\n00:00:01,000 => 00:00:02,000\nHola\n", 1),
    (
        "vtt_comma_ms",
        DIALOGUE_FR_VTT.replace("00:00:03.000 --> 00:00:04.000", "00:00:03,000 --> 00:00:04,000"),
        8,
    ),
    (
        "vtt_no_arrow",
        DIALOGUE_FR_VTT.replace("00:00:04.500 --> 00:00:06.000", "00:00:04.500 - > 00:00:06.000"),
        12,
    ),
    ("vtt_missing_end", DIALOGUE_FR_VTT.replace("00:00:06.500 --> 00:00:08.000", "00:00:06.500 -->"), 16),
]


@pytest.mark.parametrize(("name", "text", "line"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_timing_line_is_refused_with_its_line_number(
    name: str, text: str, line: int, tmp_path: Path
) -> None:
    path = tmp_path / (name + (".vtt" if text.startswith("WEBVTT") else ".srt"))
    path.write_text(text)
    with pytest.raises(SubtitleError) as exc:
        read_subtitle_file(path)
    # The line where the cue that holds it starts (SRT: its number line), and the message names the bad line.
    assert exc.value.line == line, str(exc.value)
    assert "timing line" in str(exc.value)
    bad = next(
        n for n, text_line in enumerate(text.split("\n"), start=1) if n >= line and _looks_timed(text_line)
    )
    assert bad == line or f"line {bad} " in str(exc.value)


def test_no_speakers_keeps_labels_in_the_text(tmp_path: Path) -> None:
    path = tmp_path / "x.srt"
    path.write_text(DIALOGUE_ES)
    read = read_subtitle_file(path, speakers=NO_SPEAKER_RULES)
    assert [c.speaker for c in read.cues] == [None, None, None]
    assert read.cues[0].text == "ANNA: Hola, ¿qué tal?"


def test_a_file_of_sound_descriptions_only_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.srt"
    path.write_text(
        "1\n00:00:01,000 --> 00:00:02,000\n[ríen emocionadas]\n\n2\n00:00:03,000 --> 00:00:04,000\n♪ ♪\n"
    )
    with pytest.raises(SubtitleError, match="no cue of the subtitle file is speech") as exc:
        read_subtitle_file(path)
    assert exc.value.line == 2


# ---------------------------------------------------------------- the `manifest import` command


def _import(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["manifest", "import", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_refuses_a_legacy_file_naming_the_flag_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "promo.es.srt"
    path.write_bytes(LEGACY_ES.encode("cp1252"))
    out_file = tmp_path / "m.yaml"
    code, out, err = _import(
        [str(path), "--video", "v.mp4", "--audio", "es/{index:03d}.wav", "--out", str(out_file)], capsys
    )
    assert code == 1 and out == "" and "Traceback" not in err
    assert f"{path}:3:" in err and "pass --encoding cp1252" in err
    assert not out_file.exists() and not list(tmp_path.glob(".*.tmp"))


def test_import_with_encoding_reads_a_legacy_file_and_reports_every_cue_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "promo.zh.srt"
    path.write_bytes(CHINESE.encode("gb2312"))
    out_file = tmp_path / "m.yaml"
    code, out, err = _import(
        [
            str(path),
            "--video",
            "v.mp4",
            "--audio",
            "zh/{index:03d}.wav",
            "--encoding",
            "gb2312",
            "--out",
            str(out_file),
        ],
        capsys,
    )
    assert code == 0, err
    assert "wrote" in out and "(3 lines)" in out  # with --out, the report follows on stdout
    assert "read as gb2312" in out
    assert f"{path}:10: cue 3 left out: non-speech cue" in out and "（笑声）" in out
    text = out_file.read_text(encoding="utf-8")
    assert "今天天气很好" in text and "zh/004.wav" in text and "zh/003.wav" not in text


def test_import_no_speakers_flag_and_speaker_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.es.srt"
    path.write_text(DIALOGUE_ES)
    common = [str(path), "--video", "v.mp4", "--audio", "{index}.wav"]
    code, out, _ = _import(common, capsys)
    assert code == 0 and "speaker: ANNA" in out and "speaker: Bob" in out
    code, out, _ = _import([*common, "--no-speakers"], capsys)
    assert code == 0 and "speaker:" not in out and "ANNA: Hola" in out
    code, out, _ = _import([*common, "--speakers", "voice,dash"], capsys)
    assert code == 0 and "speaker:" not in out
    with pytest.raises(SystemExit) as exit_:
        _import([*common, "--speakers", "names"], capsys)
    assert exit_.value.code == 2 and "unknown speaker rule" in capsys.readouterr().err


def test_import_refuses_a_cue_that_ends_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.srt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nUno\n\n2\n00:00:04,000 --> 00:00:03,000\nDos\n")
    code, out, err = _import([str(path), "--video", "v.mp4", "--audio", "{index}.wav"], capsys)
    assert code == 1 and out == "" and f"{path}:6:" in err and "not after its start" in err


def test_imported_file_reports_merged_and_dropped_blocks_with_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.en.srt"
    path.write_text(UNTIMED_EN)
    code, _, err = _import([str(path), "--video", "v.mp4", "--audio", "{index}.wav"], capsys)
    assert code == 0
    assert f"{path}:5: block merged: a block without a timing line" in err
    assert f"{path}:20: cue 5 dropped: it has no text" in err
    assert f"{path}:23: cue 6 left out: non-speech cue '[coughs]'" in err
