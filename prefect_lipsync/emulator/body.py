"""Reading a POST body without holding a big upload in memory several times.

A small body is parsed with `strict_json.loads`. A big one (a mediaStorage upload of a video as
base64) is streamed to a file first, then parsed incrementally: any string longer than
`spill_chars` is written to its own file and stands in the tree as a `SpilledString`, so a 300 MB
upload costs a few MB of memory, not three copies of it. Both keep the same limits (depth,
numbers, surrogates).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from prefect_lipsync.emulator.strict_json import MAX_DEPTH, BodyError, check_number, check_string, loads

MEMORY_LIMIT_BYTES = 8 * 1024 * 1024
SPILL_CHARS = 64 * 1024
_CHUNK = 1024 * 1024
_DATA_URI = re.compile(rb"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,")


@dataclass(frozen=True)
class SpilledString:
    """A long JSON string kept in a file (UTF-8), not in memory."""

    path: Path
    length: int

    def head(self, n: int = 256) -> bytes:
        with self.path.open("rb") as fh:
            return fh.read(n)

    def read_text(self) -> str:
        return self.path.read_text("utf-8")


@dataclass
class Body:
    """A received body: in memory, or in a temporary file the caller removes with `discard`."""

    data: bytes | None = None
    path: Path | None = None
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def receive_body(
    chunks: AsyncIterator[bytes], spill_dir: Path, memory_limit: int = MEMORY_LIMIT_BYTES
) -> Body:
    """Collect the body; past `memory_limit` bytes continue into a temporary file."""
    buffer = bytearray()
    handle: BinaryIO | None = None
    path: Path | None = None
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if handle is None:
                buffer += chunk
                if len(buffer) > memory_limit:
                    fd, name = tempfile.mkstemp(prefix="body-", suffix=".json", dir=spill_dir)
                    handle = os.fdopen(fd, "wb")
                    path = Path(name)
                    handle.write(buffer)
                    buffer = bytearray()
            else:
                handle.write(chunk)
    except BaseException:
        if handle is not None:
            handle.close()
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    if handle is not None:
        handle.close()
        return Body(path=path, size=size)
    return Body(data=bytes(buffer), size=size)


def parse_body(body: Body, spill_dir: Path, spill_chars: int = SPILL_CHARS) -> Any:
    """The JSON value of a body; long strings of a file body come back as `SpilledString`."""
    if body.data is not None:
        return loads(body.data)
    assert body.path is not None
    with body.path.open("rb") as fh:
        parser = _StreamParser(fh, spill_dir, spill_chars)
        try:
            value = parser.value()
            if parser.peek() != b"":
                raise BodyError("the body is not valid JSON: extra data after the value")
        except BaseException:
            parser.remove_spills()
            raise
    return value


def spills_in(value: Any) -> Iterator[SpilledString]:
    """Every SpilledString inside a parsed value (to remove their files when done)."""
    if isinstance(value, SpilledString):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from spills_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from spills_in(item)


_ESCAPES = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}
_WS = b" \t\r\n"
_NUMBER_CHARS = frozenset(b"+-0123456789.eE")


class _StreamParser:
    """A small recursive-descent JSON parser over a binary file, reading 1 MB at a time."""

    def __init__(self, fh: BinaryIO, spill_dir: Path, spill_chars: int) -> None:
        self._fh = fh
        self._buf = b""
        self._pos = 0
        self._spill_dir = spill_dir
        self._spill_chars = spill_chars
        self._spills: list[Path] = []
        self._depth = 0

    def remove_spills(self) -> None:
        for path in self._spills:
            path.unlink(missing_ok=True)

    # -- buffer
    def _fill(self) -> bool:
        more = self._fh.read(_CHUNK)
        if not more:
            return False
        self._buf = self._buf[self._pos :] + more
        self._pos = 0
        return True

    def peek(self) -> bytes:
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WS:
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos : self._pos + 1]
            if not self._fill():
                return b""

    def _take(self) -> bytes:
        char = self.peek()
        if not char:
            raise BodyError("the body is not valid JSON: it ends too early")
        self._pos += 1
        return char

    def _expect(self, char: bytes) -> None:
        got = self._take()
        if got != char:
            raise BodyError(
                f"the body is not valid JSON: expected {char.decode()!r}, got {got.decode('latin-1')!r}"
            )

    # -- values
    def value(self) -> Any:
        char = self.peek()
        if char in (b"{", b"["):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise BodyError(f"the body is not valid JSON: nested deeper than {MAX_DEPTH} levels")
            try:
                return self._object() if char == b"{" else self._array()
            finally:
                self._depth -= 1
        if char == b'"':
            self._pos += 1
            return self._string()
        if char and char[0] in _NUMBER_CHARS:
            return self._number()
        for word, result in ((b"true", True), (b"false", False), (b"null", None)):
            if char == word[:1]:
                self._literal(word)
                return result
        raise BodyError(f"the body is not valid JSON: unexpected {char.decode('latin-1') or 'end'!r}")

    def _literal(self, word: bytes) -> None:
        while len(self._buf) - self._pos < len(word) and self._fill():
            pass
        if self._buf[self._pos : self._pos + len(word)] != word:
            raise BodyError("the body is not valid JSON: bad literal")
        self._pos += len(word)

    def _number(self) -> int | float:
        out = bytearray()
        while True:
            if self._pos >= len(self._buf) and not self._fill():
                break
            char = self._buf[self._pos]
            if char not in _NUMBER_CHARS:
                break
            out.append(char)
            self._pos += 1
            if len(out) > 1024:  # check_number refuses it anyway; do not read a 1 GB number
                break
        return check_number(out.decode("ascii"))

    def _object(self) -> dict[str, Any]:
        self._expect(b"{")
        result: dict[str, Any] = {}
        if self.peek() == b"}":
            self._pos += 1
            return result
        while True:
            self._expect(b'"')
            key = self._string()
            if not isinstance(key, str):
                raise BodyError("the body is not valid JSON: an object key is too long")
            self._expect(b":")
            result[key] = self.value()
            sep = self._take()
            if sep == b"}":
                return result
            if sep != b",":
                raise BodyError("the body is not valid JSON: expected ',' or '}' in an object")

    def _array(self) -> list[Any]:
        self._expect(b"[")
        result: list[Any] = []
        if self.peek() == b"]":
            self._pos += 1
            return result
        while True:
            result.append(self.value())
            sep = self._take()
            if sep == b"]":
                return result
            if sep != b",":
                raise BodyError("the body is not valid JSON: expected ',' or ']' in an array")

    def _string(self) -> str | SpilledString:
        """The rest of a string whose opening quote was consumed."""
        parts: list[bytes] = []
        held = 0
        sink: BinaryIO | None = None
        sink_path: Path | None = None
        written = 0
        try:
            while True:
                if self._pos >= len(self._buf) and not self._fill():
                    raise BodyError("the body is not valid JSON: a string is not closed")
                quote = self._buf.find(b'"', self._pos)
                slash = self._buf.find(b"\\", self._pos)
                stop = min(i for i in (quote, slash, len(self._buf)) if i >= 0)
                piece = self._buf[self._pos : stop]
                self._pos = stop
                if stop == slash:
                    piece += self._escape()
                elif stop == quote:
                    self._pos += 1
                parts.append(piece)
                held += len(piece)
                if sink is None and held > self._spill_chars:
                    fd, name = tempfile.mkstemp(prefix="spill-", dir=self._spill_dir)
                    sink, sink_path = os.fdopen(fd, "wb"), Path(name)
                    self._spills.append(sink_path)
                if sink is not None:
                    for part in parts:
                        sink.write(part)
                    written += held
                    parts, held = [], 0
                if stop == quote:
                    break
        finally:
            if sink is not None:
                sink.close()
        if sink_path is not None:
            return SpilledString(sink_path, written)
        try:
            return check_string(b"".join(parts).decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise BodyError("the body is not valid JSON: a string is not UTF-8") from None

    def _escape(self) -> bytes:
        """Decode the escape at the cursor (a backslash) and move past it."""
        while len(self._buf) - self._pos < 2 and self._fill():
            pass
        if len(self._buf) - self._pos < 2:
            raise BodyError("the body is not valid JSON: a string ends in a backslash")
        kind = self._buf[self._pos + 1]
        if kind in _ESCAPES:
            self._pos += 2
            return _ESCAPES[kind]
        if kind != ord("u"):
            raise BodyError("the body is not valid JSON: bad escape in a string")
        while len(self._buf) - self._pos < 12 and self._fill():
            pass
        code = self._hex4(self._pos + 2)
        self._pos += 6
        if 0xD800 <= code < 0xDC00 and self._buf[self._pos : self._pos + 2] == b"\\u":
            low = self._hex4(self._pos + 2)
            if 0xDC00 <= low < 0xE000:
                self._pos += 6
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        return chr(code).encode("utf-8", "surrogatepass")

    def _hex4(self, at: int) -> int:
        try:
            return int(self._buf[at : at + 4].decode("ascii"), 16)
        except ValueError:
            raise BodyError("the body is not valid JSON: bad \\u escape") from None


# --------------------------------------------------------------------------- base64 media


class MediaDecodeError(ValueError):
    """An upload's `media` is neither base64, a data URI, nor a URL."""


def split_data_uri(head: bytes) -> tuple[str | None, int]:
    """(mime type or None, length of the `data:...;base64,` prefix) of a value's first bytes."""
    match = _DATA_URI.match(head)
    if match is None:
        return None, 0
    mime = match.group(1).decode("ascii") if match.group(1) else None
    return mime, match.end()


def decode_base64_to_file(value: str | SpilledString, dest: Path) -> tuple[int, str | None]:
    """Decode raw base64 or a base64 data URI into `dest` (atomically); return (bytes, mime)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=dest.parent)
    tmp = Path(tmp_name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(value, SpilledString):
                mime, skip = split_data_uri(value.head())
                with value.path.open("rb") as src:
                    src.seek(skip)
                    size = _decode_stream(iter(lambda: src.read(_CHUNK), b""), out)
            else:
                raw = value.encode("ascii", "replace")
                mime, skip = split_data_uri(raw[:256])
                size = _decode_stream(iter([raw[skip:]]), out)
        if size == 0:
            raise MediaDecodeError("media is empty")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size, mime


def _decode_stream(chunks: Iterator[bytes], out: BinaryIO) -> int:
    carry = b""
    size = 0
    for chunk in chunks:
        data = carry + chunk.translate(None, b" \t\r\n")
        cut = len(data) - len(data) % 4
        carry = data[cut:]
        size += _decode_piece(data[:cut], out)
    if carry:
        size += _decode_piece(carry + b"=" * (-len(carry) % 4), out)
    return size


def _decode_piece(piece: bytes, out: BinaryIO) -> int:
    if not piece:
        return 0
    try:
        decoded = base64.b64decode(piece, validate=True)
    except binascii.Error:
        raise MediaDecodeError("media is not valid base64 (nor a data URI or an http(s) URL)") from None
    out.write(decoded)
    return len(decoded)
