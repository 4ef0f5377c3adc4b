"""SRT and WebVTT files as script lines: exact times, speakers, and the file line of each cue.

SRT goes through `srt` (MIT), WebVTT through `webvtt-py`. Times come from the parsed timestamps
as exact fractions (webvtt's `start_in_seconds` is an int: 3.5 s would read 3). A speaker is a
WebVTT voice (`<v Anna>`), or a `[Anna]` or `Anna:` prefix, which is removed from the text.
"""

from __future__ import annotations

import datetime
import io
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import srt
import webvtt

_BRACKET_RE = re.compile(r"^\s*\[(?P<name>[^\]\n]{1,40})\]\s*(?P<rest>.*)$", re.DOTALL)
# "Anna: ..." - a name of at most three words, no digits first, before the first colon.
_COLON_RE = re.compile(r"^\s*(?P<name>[^\W\d][\w.'-]*(?: [\w.'-]+){0,2}):\s+(?P<rest>.*)$", re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_VTT_TIMING_RE = re.compile(r"^\s*(?:\d+:)?\d{2}:\d{2}\.\d{3}\s+-->\s+(?:\d+:)?\d{2}:\d{2}\.\d{3}(?:\s|$)")


class SubtitleError(ValueError):
    """A subtitle file that cannot be read; `line` (1-based) says where, when known."""

    def __init__(self, message: str, line: int | None, fix: str) -> None:
        self.line = line
        self.fix = fix
        super().__init__(message)


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


def split_speaker(text: str) -> tuple[str | None, str]:
    """'[Anna] Hola' or 'Anna: Hola' -> ('Anna', 'Hola'); no prefix -> (None, text)."""
    for pattern in (_BRACKET_RE, _COLON_RE):
        match = pattern.match(text)
        if match:
            return match["name"].strip(), match["rest"].strip()
    return None, text.strip()


def _seconds(delta: datetime.timedelta) -> Fraction:
    return Fraction(delta.days * 86400 + delta.seconds) + Fraction(delta.microseconds, 1_000_000)


def _timing_lines(text: str) -> list[int]:
    """1-based lines holding a cue's `-->`, in file order (cue i is on the i-th one)."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if "-->" in line]


def parse_srt(text: str) -> list[Cue]:
    try:
        subs = list(srt.parse(text))
    except (srt.SRTParseError, ValueError) as exc:
        start = getattr(exc, "expected_start", None)
        line = text.count("\n", 0, start) + 1 if isinstance(start, int) else None
        raise SubtitleError(
            f"not a valid SRT file: {str(exc).splitlines()[0]}",
            line,
            "each cue is: a number, a 'HH:MM:SS,mmm --> HH:MM:SS,mmm' line, text, a blank line",
        ) from None
    timing = _timing_lines(text)
    cues = []
    for n, sub in enumerate(subs):
        speaker, body = split_speaker(_TAG_RE.sub("", sub.content))
        cues.append(
            Cue(
                index=n + 1,
                id=str(sub.index) if sub.index is not None else str(n + 1),
                start=_seconds(sub.start),
                end=_seconds(sub.end),
                text=body,
                speaker=speaker,
                line=timing[n] if n < len(timing) else None,
            )
        )
    return cues


def _vtt_time(caption: webvtt.Caption, which: str) -> Fraction:
    stamp = getattr(caption, f"{which}_time")
    return Fraction(int(stamp.in_milliseconds()), 1000)


def parse_vtt(text: str) -> list[Cue]:
    # webvtt-py skips a cue whose timing it cannot read: say where it is instead.
    for n, line in enumerate(text.splitlines(), start=1):
        if "-->" in line and not _VTT_TIMING_RE.match(line):
            raise SubtitleError(
                f"not a valid WebVTT timing line: {line.strip()[:60]!r}",
                n,
                "write cue times as 'HH:MM:SS.mmm --> HH:MM:SS.mmm' (or 'MM:SS.mmm')",
            )
    try:
        captions = list(webvtt.from_buffer(io.StringIO(text)).captions)
    except Exception as exc:  # webvtt raises its own errors and plain ValueErrors alike
        raise SubtitleError(
            f"not a valid WebVTT file: {exc}",
            None,
            "start with 'WEBVTT', then cues of 'HH:MM:SS.mmm --> HH:MM:SS.mmm' and text",
        ) from None
    timing = _timing_lines(text)
    cues = []
    for n, caption in enumerate(captions):
        voice = getattr(caption, "voice", None)
        speaker: str | None
        if voice:
            speaker, body = str(voice).strip(), caption.text.strip()
        else:
            speaker, body = split_speaker(caption.text)
        cues.append(
            Cue(
                index=n + 1,
                id=caption.identifier or str(n + 1),
                start=_vtt_time(caption, "start"),
                end=_vtt_time(caption, "end"),
                text=body,
                speaker=speaker or None,
                line=timing[n] if n < len(timing) else None,
            )
        )
    return cues


def read_subtitles(path: str | Path) -> list[Cue]:
    """The cues of an .srt or .vtt file (chosen by extension, else by a WEBVTT header)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SubtitleError(
            "subtitle file not found", None, "check the path (relative to the manifest)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubtitleError(f"cannot read the subtitle file: {exc}", None, "save it as UTF-8 text") from None
    is_vtt = file.suffix.lower() == ".vtt" or text.lstrip().startswith("WEBVTT")
    cues = parse_vtt(text) if is_vtt else parse_srt(text)
    if not cues:
        raise SubtitleError("the subtitle file holds no cue", None, "add cues, or remove the language")
    return cues


def fill_template(template: str, cue: Cue) -> str:
    """The audio file of `cue` from a template such as 'it/{index:03d}.wav'."""
    return template.format(index=cue.index, id=cue.id, speaker=cue.speaker or "")
