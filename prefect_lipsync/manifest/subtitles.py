"""SRT and WebVTT files as script lines: exact times, speakers, the file line of each cue, and a report.

SRT goes through `srt` (MIT), WebVTT through `webvtt-py`: a file is read as those libraries read
it, with three differences that matter when every line is paid for:
- a line that looks like a timing line but is not one they accept is refused with its line
  number (they would merge that cue into the previous one's text, or skip it, silently);
- cues that say nothing (sound descriptions, music) are left out, empty cues dropped, and
  untimed blocks (merged into the previous cue by SRT readers, skipped by WebVTT readers) kept
  as those readers do: each one is reported in `SubtitleFile.notes` with its line and why;
- speakers come only from subtitle conventions (see `subtitle_speakers`).
Times come from the parsed timestamps as exact fractions (webvtt's `start_in_seconds` is an
int: 3.5 s would read 3). A left-out cue keeps its number: cue 3 stays {index} 3.
"""

from __future__ import annotations

import datetime
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import srt
import webvtt
from webvtt.vtt import WebVTTCommentBlock, WebVTTCueBlock, WebVTTStyleBlock

from prefect_lipsync.manifest.subtitle_encoding import SubtitleEncodingError, decode_subtitle_bytes
from prefect_lipsync.manifest.subtitle_errors import SubtitleError
from prefect_lipsync.manifest.subtitle_speakers import (
    ALL_SPEAKER_RULES,
    SpeakerRule,
    split_speakers,
    voices_of,
)
from prefect_lipsync.manifest.subtitle_text import speech_of, strip_tags

__all__ = [
    "Cue",
    "CueNote",
    "SubtitleEncodingError",
    "SubtitleError",
    "SubtitleFile",
    "fill_template",
    "parse_srt",
    "parse_subtitle_text",
    "parse_vtt",
    "read_subtitle_file",
    "read_subtitles",
    "split_speaker",
]

_VTT_TIMING_RE = re.compile(r"^\s*(?:\d+:)?\d{2}:\d{2}\.\d{3}\s+-->\s+(?:\d+:)?\d{2}:\d{2}\.\d{3}(?:\s|$)")
# Two timestamps around an arrow (or a dash between full ones): meant as a timing line, valid or not.
_STAMP_ISH = r"\d{1,2}[:.]\d{1,2}(?:[:.]\d{1,2})?(?:[,.:;]\d{1,3})?"
_FULL_STAMP = r"\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}"
_TIMING_ISH_RE = re.compile(
    rf"^\s*(?:{_STAMP_ISH}\s*(?:-+\s*>|=+>|→|[–—]>)\s*{_STAMP_ISH}|{_FULL_STAMP}\s*[-–—]+\s*{_FULL_STAMP})"
)

Action = Literal["left out", "dropped", "merged", "no speaker"]


@dataclass(frozen=True)
class Cue:
    """One subtitle: its ordinal, id, exact times, text without speaker, speaker, and file line."""

    index: int
    id: str
    start: Fraction
    end: Fraction
    text: str
    speaker: str | None
    line: int | None


@dataclass(frozen=True)
class CueNote:
    """A cue or block that did not become a script line as written: what happened to it, and why."""

    line: int | None  # 1-based: a cue's timing line, a block's first line
    action: Action
    reason: str
    cue_id: str | None = None

    def __str__(self) -> str:
        what = f"cue {self.cue_id}" if self.cue_id else "block"
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{what} {self.action}: {self.reason}"

    def located(self, source: str) -> str:
        """The note as 'FILE:LINE: cue 3 left out: why', the way compilers place a message."""
        what = f"cue {self.cue_id}" if self.cue_id else "block"
        place = f"{source}:{self.line}" if self.line is not None else source
        return f"{place}: {what} {self.action}: {self.reason}"


@dataclass(frozen=True)
class SubtitleFile:
    """The cues of a subtitle file to lip-sync, what was not taken as written, and how it was read."""

    cues: list[Cue]
    notes: list[CueNote] = field(default_factory=list)
    format: Literal["srt", "vtt"] = "srt"
    encoding: str = "utf-8"
    bom: bool = False
    encoding_note: str | None = None  # e.g. a byte-order mark that overrode the encoding given


def split_speaker(text: str) -> tuple[str | None, str]:
    """'[Anna] Hola' or 'Anna: Hola' -> ('Anna', 'Hola'); no speaker mark -> (None, text)."""
    found = split_speakers(text)
    return found.speaker, found.text


def _seconds(delta: datetime.timedelta) -> Fraction:
    return Fraction(delta.days * 86400 + delta.seconds) + Fraction(delta.microseconds, 1_000_000)


def _normal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _short(text: str, limit: int = 60) -> str:
    flat = " / ".join(part.strip() for part in text.split("\n") if part.strip())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


class _Cues:
    """Builds the cues of one file: speakers, speech, and a note for every cue not taken as written."""

    def __init__(self, rules: Iterable[SpeakerRule]) -> None:
        self.rules = frozenset(rules)
        self.cues: list[Cue] = []
        self.notes: list[CueNote] = []

    def add(
        self,
        *,
        index: int,
        cue_id: str,
        start: Fraction,
        end: Fraction,
        raw: str,
        line: int | None,
        is_vtt: bool,
    ) -> None:
        voices = voices_of(raw) if is_vtt else []
        found = split_speakers(strip_tags(raw), self.rules, voices=voices)
        speech = speech_of(found.text)
        if not raw.strip():
            self.notes.append(CueNote(line, "dropped", "it has no text (subtitle readers skip it)", cue_id))
            return
        if not speech.is_speech and not speech.non_speech:
            self.notes.append(CueNote(line, "dropped", f"no word in it ({_short(found.text)})", cue_id))
            return
        if not speech.is_speech:
            parts = "; ".join(speech.non_speech) or _short(found.text)
            self.notes.append(
                CueNote(line, "left out", f"non-speech cue {_short(parts)}: nothing in it is said", cue_id)
            )
            return
        if len(found.names) > 1:
            self.notes.append(
                CueNote(
                    line,
                    "no speaker",
                    f"it holds lines of {len(found.names)} speakers ({', '.join(found.names)}) but plays as "
                    "one audio: no speaker taken (split the cue to target each face)",
                    cue_id,
                )
            )
        self.cues.append(
            Cue(
                index=index,
                id=cue_id,
                start=start,
                end=end,
                text=speech.text,
                speaker=found.speaker,
                line=line,
            )
        )


def _refuse_timing_like(text: str, first_line: int, fix: str, fmt: str) -> None:
    for n, line in enumerate(text.split("\n"), start=first_line):
        if _TIMING_ISH_RE.match(line):
            raise SubtitleError(
                f"not a valid {fmt} timing line: {line.strip()[:60]!r} ({fmt} readers would take it as text "
                "and the cue would be lost)",
                n,
                fix,
            )


_SRT_FIX = "each cue is: a number, a 'HH:MM:SS,mmm --> HH:MM:SS,mmm' line, text, a blank line"


def _parse_srt(text: str, rules: Iterable[SpeakerRule]) -> tuple[list[Cue], list[CueNote]]:
    try:
        subs = list(srt.parse(text))
    except (srt.SRTParseError, ValueError) as exc:
        start = getattr(exc, "expected_start", None)
        line = _line_at(text, start) if isinstance(start, int) else None
        detail = str(exc).splitlines()[0]
        if isinstance(start, int):
            end = getattr(exc, "actual_start", len(text))
            for n, bad in enumerate(text[start:end].split("\n"), start=line or 1):
                if _TIMING_ISH_RE.match(bad):
                    detail = f"line {n} {bad.strip()[:60]!r} is not a timing line SRT readers accept"
                    break
        raise SubtitleError(f"not a valid SRT file: {detail}", line, _SRT_FIX) from None
    # srt.parse walks SRT_REGEX: its matches give each cue's place in the text, one for one.
    matches = list(srt.SRT_REGEX.finditer(text))
    built = _Cues(rules)
    for n, (sub, match) in enumerate(zip(subs, matches, strict=True)):
        timing_line = _line_at(text, match.start(2))
        cue_id = str(sub.index) if sub.index is not None else str(n + 1)
        content_at = match.start(5)
        _refuse_timing_like(match.group(5), _line_at(text, content_at), _SRT_FIX, "SRT")
        for block in re.finditer(r"\n[ \t]*\n\s*(?=\S)", match.group(5)):
            built.notes.append(
                CueNote(
                    _line_at(text, content_at + block.end()),
                    "merged",
                    f"a block without a timing line, read as more text of cue {cue_id} (line {timing_line}) as "
                    "SRT readers do; give it its own 'start --> end' line if it is a cue of its own",
                )
            )
        built.add(
            index=n + 1,
            cue_id=cue_id,
            start=_seconds(sub.start),
            end=_seconds(sub.end),
            raw=sub.content,
            line=timing_line,
            is_vtt=False,
        )
    return built.cues, built.notes


def _vtt_blocks(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Blocks as webvtt-py cuts them (an empty line ends one; so does a second timing line), with line numbers."""
    blocks: list[tuple[int, list[str]]] = []
    block: list[str] = []
    first = 0
    in_header = True
    for n, line in enumerate(lines, start=1):
        new = bool(block and "-->" in line and (in_header or len(block) > 1 or "-->" in block[0]))
        if (not line or new) and block:
            blocks.append((first, block))
            block = []
            in_header = False
        if line:
            if not block:
                first = n
            block.append(line)
    if block:
        blocks.append((first, block))
    return blocks


_VTT_FIX = "write cue times as 'HH:MM:SS.mmm --> HH:MM:SS.mmm' (or 'MM:SS.mmm')"


def _parse_vtt(text: str, rules: Iterable[SpeakerRule]) -> tuple[list[Cue], list[CueNote]]:
    lines = text.split("\n")
    for n, line in enumerate(lines, start=1):
        if "-->" in line and not _VTT_TIMING_RE.match(line):
            raise SubtitleError(f"not a valid WebVTT timing line: {line.strip()[:60]!r}", n, _VTT_FIX)
        if "-->" not in line and _TIMING_ISH_RE.match(line):
            raise SubtitleError(
                f"not a valid WebVTT timing line: {line.strip()[:60]!r} (WebVTT readers would skip the cue)",
                n,
                _VTT_FIX,
            )
    try:
        captions = list(webvtt.from_buffer(io.StringIO(text)).captions)
    except Exception as exc:  # webvtt raises its own errors and plain ValueErrors alike
        raise SubtitleError(
            f"not a valid WebVTT file: {exc}",
            1,
            "start with 'WEBVTT', then cues of 'HH:MM:SS.mmm --> HH:MM:SS.mmm' and text",
        ) from None
    built = _Cues(rules)
    cue_blocks: list[tuple[int, list[str]]] = []
    for first, block in _vtt_blocks(lines)[1:]:  # the first block is the WEBVTT header
        if WebVTTCueBlock.is_valid(block):
            timing = first if "-->" in block[0] else first + 1
            cue_blocks.append((timing, block))
        elif not (
            all(not line.strip() for line in block)  # whitespace alone is no cue
            or WebVTTCommentBlock.is_valid(block)
            or WebVTTStyleBlock.is_valid(block)
            or block[0].startswith("REGION")
        ):
            built.notes.append(
                CueNote(
                    first,
                    "dropped",
                    f"a block without a timing line ({_short(chr(10).join(block))}), skipped as WebVTT readers "
                    "do; give it a 'start --> end' line if it is a cue",
                )
            )
    at = 0
    for n, caption in enumerate(captions):
        # Cue blocks and captions come in the same order; a block the library could not read is skipped.
        while at < len(cue_blocks) and WebVTTCueBlock.from_lines(cue_blocks[at][1]).payload != caption.lines:
            at += 1
        cue_line = cue_blocks[at][0] if at < len(cue_blocks) else None
        at += 1
        built.add(
            index=n + 1,
            cue_id=caption.identifier or str(n + 1),
            start=Fraction(int(caption.start_time.in_milliseconds()), 1000),
            end=Fraction(int(caption.end_time.in_milliseconds()), 1000),
            raw=caption.raw_text,
            line=cue_line,
            is_vtt=True,
        )
    return built.cues, built.notes


def _is_vtt(text: str, name: str) -> bool:
    return name.lower().endswith(".vtt") or text.lstrip().startswith("WEBVTT")


def parse_subtitle_text(
    text: str, *, name: str = "", speakers: Iterable[SpeakerRule] = ALL_SPEAKER_RULES
) -> SubtitleFile:
    """The cues and notes of subtitle text (WebVTT by `name`'s extension or its header, else SRT)."""
    text = _normal_newlines(text).removeprefix("\ufeff")
    if _is_vtt(text, name):
        cues, notes = _parse_vtt(text, speakers)
        fmt: Literal["srt", "vtt"] = "vtt"
    else:
        cues, notes = _parse_srt(text, speakers)
        fmt = "srt"
    return SubtitleFile(cues=cues, notes=sorted(notes, key=lambda n: n.line or 0), format=fmt)


def parse_srt(text: str, speakers: Iterable[SpeakerRule] = ALL_SPEAKER_RULES) -> list[Cue]:
    """The spoken cues of SRT text."""
    return _parse_srt(_normal_newlines(text).removeprefix("\ufeff"), speakers)[0]


def parse_vtt(text: str, speakers: Iterable[SpeakerRule] = ALL_SPEAKER_RULES) -> list[Cue]:
    """The spoken cues of WebVTT text."""
    return _parse_vtt(_normal_newlines(text).removeprefix("\ufeff"), speakers)[0]


def read_subtitle_file(
    path: str | Path,
    *,
    encoding: str | None = None,
    speakers: Iterable[SpeakerRule] = ALL_SPEAKER_RULES,
) -> SubtitleFile:
    """Read an .srt or .vtt file: its cues to lip-sync, and a note for every cue not taken as written.

    Raises SubtitleError (SubtitleEncodingError when the bytes do not decode) naming the line.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise SubtitleError(
            "subtitle file not found", None, "check the path (relative to the manifest)"
        ) from None
    except OSError as exc:
        raise SubtitleError(
            f"cannot read the subtitle file: {exc}", None, "check the file's permissions"
        ) from None
    try:
        decoded = decode_subtitle_bytes(data, encoding)
    except ValueError as exc:
        if isinstance(exc, SubtitleError):
            raise
        raise SubtitleError(str(exc), None, "give a codec name such as cp1252, gb2312 or utf-16") from None
    parsed = parse_subtitle_text(decoded.text, name=file.name, speakers=speakers)
    timed = len(parsed.cues) + sum(
        n.action in ("left out", "dropped") and n.cue_id is not None for n in parsed.notes
    )
    if not timed:
        raise SubtitleError("the subtitle file holds no cue", None, "add cues, or remove the language")
    if not parsed.cues:
        first = parsed.notes[0].line if parsed.notes else None
        raise SubtitleError(
            f"no cue of the subtitle file is speech: all {timed} were left out or dropped "
            f"({'; '.join(str(n) for n in parsed.notes[:3])})",
            first,
            "give the file the spoken lines, or check --no-speakers / the speaker rules",
        )
    return SubtitleFile(
        cues=parsed.cues,
        notes=parsed.notes,
        format=parsed.format,
        encoding=decoded.encoding,
        bom=decoded.bom,
        encoding_note=decoded.note,
    )


def read_subtitles(
    path: str | Path,
    *,
    encoding: str | None = None,
    speakers: Iterable[SpeakerRule] = ALL_SPEAKER_RULES,
) -> list[Cue]:
    """The cues of an .srt or .vtt file (chosen by extension, else by a WEBVTT header)."""
    return read_subtitle_file(path, encoding=encoding, speakers=speakers).cues


def fill_template(template: str, cue: Cue) -> str:
    """The audio file of `cue` from a template such as 'it/{index:03d}.wav'."""
    return template.format(index=cue.index, id=cue.id, speaker=cue.speaker or "")
