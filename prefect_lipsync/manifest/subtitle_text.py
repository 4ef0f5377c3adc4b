"""A cue's text as speech: markup stripped, non-speech (sound descriptions, music) taken out.

Subtitles for the deaf and streaming-style files describe sounds in brackets or parentheses
(`[ríen emocionadas]`, `(door slams)`) and mark music and song with notes (`♪ ... ♪`). None of
that is said by a face on screen, so it is not lip-synced: a cue holding nothing else is left
out of the lines, and descriptions inside a spoken cue are taken out of its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# HTML-like tags (<i>, <font ...>, WebVTT <c.x>, <00:01.000>) and ASS override blocks ({\an8}).
_TAG_RE = re.compile(r"<[^<>\n]*>|\{\\[^{}\n]*\}")
_DESCRIPTION_RE = re.compile(r"\[[^\[\]]*\]|\([^()]*\)|（[^（）]*）|【[^【】]*】")
_MUSIC_NOTES = "♪♫♬♩"
_HAS_WORDS_RE = re.compile(r"[^\W_]")


def strip_tags(text: str) -> str:
    """Text without markup tags."""
    return _TAG_RE.sub("", text)


@dataclass(frozen=True)
class SpeechText:
    """What is said in a cue, and the non-speech parts taken out of it (in order)."""

    text: str
    non_speech: list[str] = field(default_factory=list)

    @property
    def is_speech(self) -> bool:
        """Whether anything is said: a word (letters or digits) is left."""
        return bool(_HAS_WORDS_RE.search(self.text))


def speech_of(text: str) -> SpeechText:
    """Split a cue's text (tags stripped) into what is said and its non-speech parts."""
    removed: list[str] = []

    def take(match: re.Match[str]) -> str:
        removed.append(" ".join(match.group(0).split()))
        return " "

    kept: list[str] = []
    for line in _DESCRIPTION_RE.sub(take, text).split("\n"):
        stripped = line.strip()
        if stripped and stripped[0] in _MUSIC_NOTES:  # a sung or music line: "♪ la la ♪"
            removed.append(stripped)
            continue
        words = " ".join(stripped.split())
        if _HAS_WORDS_RE.search(words) or words.strip("-‐–—.…:,!?¿¡ "):  # punctuation alone says nothing
            kept.append(words)
    return SpeechText("\n".join(kept), removed)
