"""Bodies the emulator cannot parse are answered 400 in the service's error shape (REST), or with an
error frame (WebSocket): never a 500, a traceback, or a dropped connection."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.emulator.body import Body, parse_body
from prefect_lipsync.emulator.strict_json import MAX_DEPTH, BodyError, loads

from .conftest import KEY, Api

TASK_UUID = str(uuid.uuid4())


def poll_with(extra: bytes) -> bytes:
    """A getResponse task with one more field whose raw JSON is `extra`."""
    return b'[{"taskType":"getResponse","taskUUID":"%s","x":%s}]' % (TASK_UUID.encode(), extra)


HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "not-json": b"hello",
    "truncated": b'[{"taskType":',
    "trailing-garbage": b"[] x",
    "object-not-array": b'{"taskType":"getResponse","taskUUID":"x"}',
    "empty-array": b"[]",
    "string": b'"tasks"',
    "number": b"42",
    "null": b"null",
    "array-of-numbers": b"[1, 2]",
    "deep-100k": b"[" * 100_000 + b"]" * 100_000,
    "deep-5000-inside-a-task": poll_with(b"[" * 5000 + b"]" * 5000),
    "deep-just-past-the-limit": poll_with(b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH),
    "float-1e400": poll_with(b"1e400"),
    "float-minus-1e400": poll_with(b"-1e400"),
    "int-10**400": poll_with(b"1" + b"0" * 400),
    "int-5000-digits": poll_with(b"7" * 5000),
    "NaN": poll_with(b"NaN"),
    "Infinity": poll_with(b"Infinity"),
    "minus-Infinity": poll_with(b"-Infinity"),
    "lone-high-surrogate": b'[{"taskType":"getResponse","taskUUID":"\\ud800"}]',
    "lone-low-surrogate-in-text": (
        b'[{"taskType":"videoInference","taskUUID":"%s","model":"sync:3@0",'
        b'"inputs":{"video":"x"},"speech":{"text":"hi \\udc00"}}]' % TASK_UUID.encode()
    ),
    "lone-surrogate-in-a-key": b'[{"taskType":"getResponse","taskUUID":"x","\\udbff":1}]',
    "not-utf8": b'[{"taskType":"\xff\xfe"}]',
    "utf16": '[{"taskType":"getResponse","taskUUID":"x"}]'.encode("utf-16"),
    "raw-control-character": b'[{"taskType":"get\x01Response"}]',
}


@pytest.fixture(scope="module")
def shared() -> Iterator[Api]:
    """One emulator for the many bodies below (each test leaves it as it found it)."""
    with run_emulator(latency=0) as url:
        api = Api(url)
        yield api
        api.close()


def assert_service_error_shape(body: dict[str, Any]) -> None:
    errors = body["errors"]
    assert isinstance(errors, list) and errors
    for error in errors:
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
    assert not body.get("data")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_an_unparsable_body_is_400_in_the_service_error_shape(shared: Api, name: str) -> None:
    api = shared
    answer = api.http.post(
        api.url,
        content=HOSTILE[name],
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert_service_error_shape(answer.json())
    # ...and the emulator goes on answering.
    assert api.poll(TASK_UUID).json()["errors"][0]["code"] == "taskNotFound"


BIG_PAD = b"QUFB" * (9 * 1024 * 1024 // 4)  # past the in-memory limit: the streamed parser reads it


@pytest.mark.parametrize(
    "extra",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"1e400",
        b"1" + b"0" * 400,
        b"9" * 5000,
        b"NaN",
        b'"\\ud800"',
        b"-Infinity",
    ],
    ids=["deep", "1e400", "10**400", "5000-digits", "NaN", "surrogate", "-Infinity"],
)
def test_a_big_body_with_a_hostile_value_is_400_too(shared: Api, extra: bytes) -> None:
    api = shared
    body = b'[{"taskType":"mediaStorage","taskUUID":"%s","operation":"upload","media":"%s","x":%s}]' % (
        TASK_UUID.encode(),
        BIG_PAD,
        extra,
    )
    answer = api.http.post(api.url, content=body, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 400, answer.text[:300]
    assert_service_error_shape(answer.json())
    assert answer.json()["errors"][0]["code"] == "invalidRequestBody"
    assert api.stats()["uploads"] == 0


@pytest.mark.parametrize("name", [n for n in HOSTILE if n != "utf16"])
def test_an_unparsable_message_gets_an_error_frame_and_the_socket_stays_open(shared: Api, name: str) -> None:
    api = shared
    with connect(api.url.replace("http://", "ws://", 1), open_timeout=10) as ws:
        ws.send(json.dumps([{"taskType": "authentication", "apiKey": KEY}]))
        assert json.loads(ws.recv(timeout=10))["data"]
        raw = HOSTILE[name]
        try:
            ws.send(raw.decode("utf-8"))  # a text frame, as the clients send
        except UnicodeDecodeError:
            ws.send(raw)  # not UTF-8: only a binary frame can carry it
        frame = json.loads(ws.recv(timeout=10))
        assert_service_error_shape(frame)
        ws.send(json.dumps([{"taskType": "ping", "ping": True}]))
        assert json.loads(ws.recv(timeout=10)) == {"data": [{"taskType": "ping", "pong": True}]}


def test_the_admin_advance_endpoint_refuses_a_hostile_body_with_400(emulator: Any) -> None:
    api = emulator()
    answer = api.http.post(f"{api.url.root_url}/_emulator/advance", content=b"[" * 100_000)
    assert answer.status_code == 400 and answer.json()["errors"][0]["code"] == "invalidRequestBody"


# --------------------------------------------------------------------------- the parser itself


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"1e400", "out of range"),
        (b"18446744073709551616", "64 bits"),
        (b"-9223372036854775809", "64 bits"),
        (b"[" * 65 + b"]" * 65, f"deeper than {MAX_DEPTH}"),
        (b'"\\udfff"', "surrogate"),
        (b"\xc3\x28", "not UTF-8"),
        (b"NaN", "not a JSON number"),
    ],
)
def test_strict_loads_names_what_is_wrong(raw: bytes, words: str) -> None:
    with pytest.raises(BodyError, match=words):
        loads(raw)


def test_strict_loads_keeps_what_the_service_takes() -> None:
    value = [{"a": [1.5, -0.0, 2**64 - 1, -(2**63)], "t": "é 😀", "deep": [[[[]]]]}]
    assert loads(json.dumps(value)) == loads(json.dumps(value, ensure_ascii=False).encode()) == value
    assert loads(b'"\\ud83d\\ude00"') == "😀"  # a surrogate pair is one character, and fine
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(nested) is not None


def test_the_streamed_parser_keeps_the_same_limits(tmp_path: Any) -> None:
    for raw in (b"[" * 100_000, b"[1e400]", b'["\\ud800"]', b"[" + b"1" * 5000 + b"]", b"[+1]"):
        path = tmp_path / "body.json"
        path.write_bytes(raw)
        with pytest.raises(BodyError):
            parse_body(Body(path=path, size=len(raw)), tmp_path)
