"""The webhook receiver answers 400 in the service's error shape to any body it cannot read, never 500."""

from __future__ import annotations

import httpx
import pytest

from prefect_lipsync.runware import WebhookReceiver, serve_webhooks
from prefect_lipsync.safe_json import JSONLimitError, loads

TASK = "3f1c2a4e-8b7d-4c1e-9a2b-1234567890ab"
GOOD = (
    b'{"taskType": "videoInference", "taskUUID": "' + TASK.encode() + b'", "status": "success",'
    b' "videoUUID": "v1", "videoURL": "https://cdn.example.com/v1.mp4"}'
)

HOSTILE = {
    "deep_lists": b"[" * 100_000 + b"]" * 100_000,
    "deep_maps": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "huge_int": b'{"taskUUID": "' + TASK.encode() + b'", "progress": 1' + b"0" * 400 + b"}",
    "huge_float": b'{"taskUUID": "' + TASK.encode() + b'", "progress": 1e400}',
    "nan": b'{"taskUUID": "' + TASK.encode() + b'", "progress": NaN}',
    "lone_surrogate": b'{"taskUUID": "' + TASK.encode() + b'", "videoURL": "\\ud800"}',
    "not_json": b"<html>hello</html>",
    "not_utf8": b'{"taskUUID": "\xff\xfe"}',
    "truncated": GOOD[:40],
    "too_big": b'{"pad": "' + b"x" * (2 << 20) + b'"}',
    "not_a_result": b'{"data": [{"status": "success"}]}',
}


@pytest.fixture(scope="module")
def served() -> object:
    receiver = WebhookReceiver(token="t0ken-for-tests")
    with serve_webhooks(receiver):
        yield receiver


@pytest.mark.parametrize("name", list(HOSTILE))
def test_an_unreadable_body_gets_400_in_the_service_error_shape(served: WebhookReceiver, name: str) -> None:
    with httpx.Client(timeout=10) as http:
        answer = http.post(served.webhook_url(), content=HOSTILE[name])
        after = http.post(served.webhook_url(), content=GOOD.replace(b"v1", f"v-{name}".encode()))
    assert answer.status_code == 400, answer.text
    [error] = answer.json()["errors"]
    assert error["code"] and error["message"]
    assert after.status_code == 200 and after.json()["new"] == 1  # the receiver is still fine


def test_a_wrong_token_is_refused_in_the_same_shape(served: WebhookReceiver) -> None:
    with httpx.Client(timeout=10) as http:
        answer = http.post(served.webhook_url().replace("t0ken", "guess"), content=GOOD)
    assert answer.status_code == 403 and answer.json()["errors"][0]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[" * 70 + "]" * 70, "nesting"),
        ('{"a": ' + "9" * 5000 + "}", "5000 characters"),
        ('{"a": 1e400}', "out of range"),
        ('{"a": -Infinity}', "not a JSON number"),
        ('["\\udc00"]', "lone surrogate"),
        ("{", "not JSON"),
    ],
)
def test_safe_json_refuses_what_json_would_choke_on(text: str, needle: str) -> None:
    with pytest.raises(JSONLimitError, match=needle):
        loads(text)


def test_safe_json_reads_ordinary_json_and_long_strings() -> None:
    assert loads(b'{"a": [1, 2.5, "x"], "b": {"c": null}}') == {"a": [1, 2.5, "x"], "b": {"c": None}}
    long_text = "[" + '"' + "[" * 100_000 + '"' + "]"  # brackets inside a string are text
    assert loads(long_text) == ["[" * 100_000]
    assert loads('["\\ud83d\\ude00"]') == ["\U0001f600"]  # a surrogate pair is a character
