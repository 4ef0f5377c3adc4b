"""The WebSocket endpoint (ws://HOST:PORT/v1), spoken frame by frame as the official clients do."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .conftest import KEY, Api

PING = [{"taskType": "ping", "ping": True}]
PONG = {"data": [{"taskType": "ping", "pong": True}]}


def ws_url(api: Api) -> str:
    return api.url.replace("http://", "ws://", 1)


@contextmanager
def socket_to(api: Api, *, authenticate: bool = True, **headers: str) -> Iterator[ClientConnection]:
    with connect(ws_url(api), additional_headers=headers or None, open_timeout=10) as ws:
        if authenticate:
            answer = exchange(ws, [{"taskType": "authentication", "apiKey": KEY}])
            assert answer["data"][0]["taskType"] == "authentication", answer
        yield ws


def exchange(ws: ClientConnection, message: Any) -> dict[str, Any]:
    ws.send(message if isinstance(message, str | bytes) else json.dumps(message))
    return receive(ws)


def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return frame


def frames_for(ws: ClientConnection, count: int) -> dict[str, dict[str, Any]]:
    """The next `count` frames, by the taskUUID they carry."""
    by_uuid: dict[str, dict[str, Any]] = {}
    for _ in range(count):
        frame = receive(ws)
        items = frame.get("data", []) + frame.get("errors", [])
        assert len({item.get("taskUUID") for item in items}) == 1, f"one task per frame: {frame}"
        by_uuid[items[0]["taskUUID"]] = frame
    return by_uuid


def upload(ws: ClientConnection, path: Path) -> dict[str, Any]:
    task_uuid = str(uuid.uuid4())
    encoded = base64.b64encode(path.read_bytes()).decode()
    frame = exchange(
        ws, [{"taskType": "mediaStorage", "taskUUID": task_uuid, "operation": "upload", "media": encoded}]
    )
    [item] = frame["data"]
    assert item["taskUUID"] == task_uuid
    return dict(item)


def submission(video: str, **fields: Any) -> dict[str, Any]:
    return {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "sync:3@0",
        "deliveryMethod": "async",
        "inputs": {"video": video},
        "speech": {"text": "hello"},
        **fields,
    }


def poll_until_done(ws: ClientConnection, task_uuid: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = exchange(ws, [{"taskType": "getResponse", "taskUUID": task_uuid}])
        items = frame.get("data", []) + frame.get("errors", [])
        if items and all(i.get("status") != "processing" for i in items):
            return frame
        time.sleep(0.05)
    raise AssertionError(f"{task_uuid} did not finish")


def test_authentication_answers_a_session_uuid_and_accepts_it_again_on_reconnect(emulator: Any) -> None:
    api = emulator(api_key=KEY)
    with socket_to(api, authenticate=False) as ws:
        frame = exchange(ws, [{"taskType": "authentication", "apiKey": KEY}])
        [item] = frame["data"]
        # The JavaScript SDK matches this item by taskType: it carries no taskUUID.
        assert set(item) == {"taskType", "connectionSessionUUID"}
        session = item["connectionSessionUUID"]
        assert uuid.UUID(session)
    with socket_to(api, authenticate=False) as ws:
        again = {"taskType": "authentication", "apiKey": KEY, "connectionSessionUUID": session}
        assert exchange(ws, [again])["data"][0]["connectionSessionUUID"] == session
        unknown = {**again, "connectionSessionUUID": str(uuid.uuid4())}
        fresh = exchange(ws, [unknown])["data"][0]["connectionSessionUUID"]
        assert fresh not in (session, unknown["connectionSessionUUID"])


def test_a_wrong_key_is_an_authentication_error_and_the_socket_closes(emulator: Any) -> None:
    api = emulator(api_key=KEY)
    with socket_to(api, authenticate=False) as ws:
        frame = exchange(ws, [{"taskType": "authentication", "apiKey": "wrong"}])
        [error] = frame["errors"]
        assert error["code"] == "invalidApiKey" and error["taskType"] == "authentication"
        assert error["parameter"] == "apiKey" and "taskUUID" not in error
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_tasks_before_authentication_are_refused_per_task(emulator: Any) -> None:
    api = emulator(api_key=KEY)
    with socket_to(api, authenticate=False) as ws:
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        ws.send(json.dumps([{"taskType": "getResponse", "taskUUID": u} for u in (first, second)]))
        frames = frames_for(ws, 2)
        assert set(frames) == {first, second}
        assert all(f["errors"][0]["code"] == "missingApiKey" for f in frames.values())
        # Authenticating afterwards works on the same socket.
        assert exchange(ws, [{"taskType": "authentication", "apiKey": KEY}])["data"]


def test_a_bearer_header_on_the_upgrade_authenticates_too(emulator: Any) -> None:
    api = emulator(api_key=KEY)
    with socket_to(api, authenticate=False, Authorization=f"Bearer {KEY}") as ws:
        task_uuid = str(uuid.uuid4())
        frame = exchange(ws, [{"taskType": "getResponse", "taskUUID": task_uuid}])
        assert frame["errors"][0]["code"] == "taskNotFound"


def test_pings_are_answered_with_pongs_before_and_after_authentication(emulator: Any) -> None:
    api = emulator()
    with socket_to(api, authenticate=False) as ws:
        assert exchange(ws, PING) == PONG
        exchange(ws, [{"taskType": "authentication", "apiKey": KEY}])
        assert exchange(ws, PING) == PONG


def test_upload_submit_and_poll_over_one_socket(emulator: Any, card: Path) -> None:
    api = emulator(latency=0.3)
    with socket_to(api) as ws:
        video = upload(ws, card)
        task = submission(video["mediaUUID"], includeCost=True)
        ack = exchange(ws, [task])
        assert ack == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
        processing = exchange(ws, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
        assert processing["data"][0]["status"] == "processing"
        done = poll_until_done(ws, task["taskUUID"])
    [item] = done["data"]
    assert item["status"] == "success" and item["cost"] > 0
    assert api.http.get(item["videoURL"]).status_code == 200
    stats = api.stats()
    assert stats["http_requests"] == 0  # no POST /v1: every task went over the socket
    assert stats["ws_connections"] == 1 and stats["accepted"] == 1 and stats["uploads"] == 1


def test_each_task_of_a_message_is_answered_in_a_frame_of_its_own(emulator: Any, card: Path) -> None:
    api = emulator(latency=60)
    with socket_to(api) as ws:
        video = upload(ws, card)["mediaUUID"]
        good, bad = submission(video), submission(video, numberResults=99)
        unknown = str(uuid.uuid4())
        ws.send(json.dumps([good, bad, {"taskType": "getResponse", "taskUUID": unknown}]))
        frames = frames_for(ws, 3)
    assert frames[good["taskUUID"]] == {
        "data": [{"taskType": "videoInference", "taskUUID": good["taskUUID"]}]
    }
    assert frames[bad["taskUUID"]]["errors"][0]["parameter"] == "numberResults"
    assert "data" not in frames[bad["taskUUID"]]
    assert frames[unknown]["errors"][0]["code"] == "taskNotFound"


def test_a_resent_submit_is_a_conflict_over_the_socket_too(emulator: Any, card: Path) -> None:
    api = emulator(latency=60)
    with socket_to(api) as ws:
        task = submission(upload(ws, card)["mediaUUID"])
        assert exchange(ws, [task])["data"]
        again = exchange(ws, [task])
    assert again["errors"][0]["code"] == "conflictTaskUUID"
    assert again["errors"][0]["taskUUID"] == task["taskUUID"]


def test_an_unreachable_url_input_is_acknowledged_then_fails_over_the_socket(emulator: Any) -> None:
    api = emulator(latency=0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = submission(f"http://127.0.0.1:{port}/gone.mp4")
    with socket_to(api) as ws:
        assert exchange(ws, [task])["data"][0]["taskUUID"] == task["taskUUID"]
        done = poll_until_done(ws, task["taskUUID"])
    [error] = done["errors"]
    assert error["code"] == "invalidMediaReference" and error["taskUUID"] == task["taskUUID"]
    assert error["status"] == "error"


def test_an_empty_ack_quirk_still_acknowledges_over_the_socket(emulator: Any, card: Path) -> None:
    # Over REST the service sometimes answers a submit with an empty `data`; a socket frame that
    # names no task could not be routed, so the socket always names it.
    api = emulator(latency=60, empty_ack_rate=1.0)
    with socket_to(api) as ws:
        task = submission(upload(ws, card)["mediaUUID"])
        assert exchange(ws, [task])["data"] == [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]


def test_a_dropped_connection_fault_closes_the_socket_without_an_answer(emulator: Any) -> None:
    api = emulator(drop_rate=1.0)
    with socket_to(api) as ws:
        ws.send(json.dumps([{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}]))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is None  # no close frame: the connection was cut
    assert api.stats()["faults"]["drops"] == 1


def test_a_server_error_fault_is_an_error_frame_naming_the_task(emulator: Any) -> None:
    api = emulator(http_error_rate=1.0)
    with socket_to(api) as ws:
        task_uuid = str(uuid.uuid4())
        frame = exchange(ws, [{"taskType": "getResponse", "taskUUID": task_uuid}])
        assert exchange(ws, PING) == PONG  # the socket stays open
    [error] = frame["errors"]
    assert error["taskUUID"] == task_uuid
    assert error["code"] in {
        "rateLimitExceeded",
        "internalServerError",
        "serviceUnavailable",
        "timeoutGateway",
    }


def test_a_lost_ack_leaves_the_task_accepted(emulator: Any, card: Path) -> None:
    api = emulator(latency=60, lose_submit_rate=1.0, seed=0)  # seed 0: the answer is lost, socket open
    with socket_to(api) as ws:
        task = submission(upload(ws, card)["mediaUUID"])
        ws.send(json.dumps([task]))
        assert exchange(ws, PING) == PONG  # the next frame is the pong: no ACK came
        frame = exchange(ws, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert frame["data"][0]["status"] == "processing"
    assert api.stats()["faults"]["lost_submits"] == 1
