"""The incremental JSON body parser and the streaming base64 decoder used for big uploads."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.emulator.body import (
    Body,
    BodyError,
    MediaDecodeError,
    SpilledString,
    decode_base64_to_file,
    parse_body,
    spills_in,
)


def file_body(tmp_path: Path, raw: bytes) -> Body:
    path = tmp_path / "body.json"
    path.write_bytes(raw)
    return Body(path=path, size=len(raw))


def resolve(value: Any) -> Any:
    """A parsed value with spilled strings read back, to compare with json.loads."""
    if isinstance(value, SpilledString):
        return value.read_text()
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


TRICKY = [
    {"taskType": "mediaStorage", "media": "x" * 5000, "n": -12, "f": 1.5e3, "z": 0, "t": True, "nil": None},
    {
        "text": 'quote " backslash \\ slash / tab \t newline \n unicode é ✓ 😀 \u0001',
        "nested": {"a": [[], {}, [1, [2]]]},
    },
    {"e": "", "big": 12345678901234567890, "neg": -0.25},
]


@pytest.mark.parametrize("spill_chars", [16, 1024, 10**9])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_streamed_parse_equals_json_loads(tmp_path: Path, spill_chars: int, ensure_ascii: bool) -> None:
    raw = json.dumps(TRICKY, ensure_ascii=ensure_ascii, indent=1).encode()
    parsed = parse_body(file_body(tmp_path, raw), tmp_path, spill_chars=spill_chars)
    assert resolve(parsed) == TRICKY
    spilled = list(spills_in(parsed))
    assert bool(spilled) == (spill_chars < 5000)


def test_long_strings_spill_to_files_across_buffer_boundaries(tmp_path: Path) -> None:
    payload = base64.b64encode(bytes(range(256)) * 12000).decode()  # ~4 MB: several 1 MB reads
    raw = json.dumps([{"media": payload, "after": "ok"}]).encode()
    parsed = parse_body(file_body(tmp_path, raw), tmp_path)
    media = parsed[0]["media"]
    assert isinstance(media, SpilledString) and media.length == len(payload)
    assert media.read_text() == payload and parsed[0]["after"] == "ok"


@pytest.mark.parametrize("raw", [b"[1, 2", b'["open', b"[1,]", b"[1] 2", b"[tru]", b'{"a" 1}', b'["\\x"]'])
def test_broken_json_is_a_body_error_and_leaves_no_spill_files(tmp_path: Path, raw: bytes) -> None:
    spill_dir = tmp_path / "spills"
    spill_dir.mkdir()
    with pytest.raises(BodyError, match="not valid JSON"):
        parse_body(file_body(tmp_path, raw), spill_dir, spill_chars=2)
    assert list(spill_dir.iterdir()) == []


def test_in_memory_body_is_parsed_with_json_loads(tmp_path: Path) -> None:
    assert parse_body(Body(data=b'[{"a": 1}]'), tmp_path) == [{"a": 1}]
    with pytest.raises(BodyError):
        parse_body(Body(data=b"[{"), tmp_path)


@pytest.mark.parametrize("prefix", ["", "data:video/mp4;base64,", "data:;base64,"])
def test_base64_and_data_uris_decode_to_the_original_bytes(tmp_path: Path, prefix: str) -> None:
    original = bytes(range(256)) * 5000 + b"tail"
    encoded = prefix + base64.encodebytes(original).decode()  # with line breaks, as some encoders write
    spill = tmp_path / "spilled"
    spill.write_text(encoded)
    for value in (encoded, SpilledString(spill, len(encoded))):
        dest = tmp_path / "out.bin"
        size, mime = decode_base64_to_file(value, dest)
        assert dest.read_bytes() == original and size == len(original)
        assert mime == ("video/mp4" if "mp4" in prefix else None)


def test_text_that_is_not_base64_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaDecodeError):
        decode_base64_to_file("not base64 at all!", tmp_path / "x")
    assert not (tmp_path / "x").exists()
