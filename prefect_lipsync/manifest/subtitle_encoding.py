"""A subtitle file's bytes as text: byte-order marks, a named encoding, or UTF-8; never a guess.

A byte-order mark (UTF-8, UTF-16 or UTF-32, either byte order) decides the encoding, as in the
WHATWG decoding rules and in webvtt-py: it wins over a named encoding. Without one, the named
encoding is used, else UTF-8. A file that does not decode is refused: the error names the line of
the first bad byte and the encodings charset-normalizer finds likely, so the fix is one flag. The
guess is never used to read the file: a wrong code page gives plausible, wrong text.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import charset_normalizer

from prefect_lipsync.manifest.subtitle_errors import SubtitleError

# UTF-32-LE's mark starts with UTF-16-LE's, so the longer marks are tried first.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class SubtitleEncodingError(SubtitleError):
    """The file's bytes are not text in the encoding tried; `guesses` are likelier ones (best first)."""

    def __init__(self, message: str, line: int | None, guesses: list[str]) -> None:
        self.guesses = guesses
        super().__init__(message, line, encoding_fix(guesses, "--encoding {name}"))


def encoding_fix(guesses: list[str], how: str) -> str:
    """The fix for an undecodable file: `how` is '--encoding {name}' or the manifest key's form."""
    if not guesses:
        return "find out the file's encoding and " + how.format(name="NAME") + " (e.g. cp1252, gb2312)"
    fix = how.format(name=guesses[0])
    if len(guesses) > 1:
        fix += f" (if its text then reads wrong, try {' or '.join(guesses[1:])})"
    return fix


@dataclass(frozen=True)
class DecodedText:
    """The text of a subtitle file and how it was decoded."""

    text: str
    encoding: str
    bom: bool
    note: str | None = None  # a named encoding the byte-order mark overrode, or a UTF-8 file read otherwise


def canonical_encoding(name: str) -> str:
    """Python's name for an encoding ('CP1252' -> 'cp1252'); ValueError for an unknown one."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(
            f"unknown text encoding {name!r}: give a codec name such as utf-8, cp1252, gb2312, shift_jis, utf-16"
        ) from None


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """(encoding, mark length) of a byte-order mark at the start of `data`, or None."""
    for mark, name in _BOMS:
        if data.startswith(mark):
            return name, len(mark)
    return None


def likely_encodings(data: bytes, limit: int = 3) -> list[str]:
    """Encodings charset-normalizer finds likely for `data`, best first (may be empty)."""
    found: list[str] = []
    for match in charset_normalizer.from_bytes(data):
        name = canonical_encoding(match.encoding)
        if name not in found:
            found.append(name)
        if len(found) == limit:
            break
    return found


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _line_of_byte(data: bytes, offset: int, encoding: str) -> int:
    return data[:offset].decode(encoding, errors="replace").count("\n") + 1


def decode_subtitle_bytes(data: bytes, encoding: str | None = None) -> DecodedText:
    """Decode a subtitle file: its byte-order mark, else `encoding`, else UTF-8 (strict)."""
    named = canonical_encoding(encoding) if encoding else None
    marked = bom_encoding(data)
    if marked is not None:
        name, skip = marked
        note = None
        if named is not None and codecs.lookup(named).name != codecs.lookup(name).name:
            note = f"the file's byte-order mark says {name}: used instead of the encoding given ({encoding})"
        return DecodedText(_strict(data[skip:], name, named_by="its byte-order mark"), name, True, note)
    if named is not None:
        text = _strict(data, named, named_by="the encoding given")
        note = None
        if named != "utf-8" and not data.isascii() and _is_utf8(data):
            # Most code pages decode any bytes: UTF-8 read as cp1252 gives "Ã©" for "é" without an error.
            note = f"the file is valid UTF-8 too: read as {named} as asked; check that its text reads right"
        return DecodedText(text, named, False, note)
    text = _strict(data, "utf-8", named_by=None)
    if "\x00" in text:  # ASCII as UTF-16/32 without a mark is valid UTF-8 full of NULs
        line = text[: text.index("\x00")].count("\n") + 1
        raise SubtitleEncodingError(
            "the file holds NUL bytes, so it is not UTF-8 text (UTF-16 or UTF-32 without a byte-order mark?)",
            line,
            likely_encodings(data),
        )
    return DecodedText(text, "utf-8", False)


def _strict(data: bytes, encoding: str, *, named_by: str | None) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = _line_of_byte(data, exc.start, encoding)
        bad = data[exc.start : exc.start + 1].hex()
        guesses = [g for g in likely_encodings(data) if g != codecs.lookup(encoding).name]
        if named_by is None:
            head = (
                f"the file is not UTF-8 (byte 0x{bad} on line {line} is not valid UTF-8) and no encoding was "
                "given"
            )
        else:
            head = f"the file is not valid {encoding}, as {named_by} says (byte 0x{bad} on line {line})"
        likely = f"; charset-normalizer finds it most likely {', then '.join(guesses)}" if guesses else ""
        raise SubtitleEncodingError(head + likely, line, guesses) from None
