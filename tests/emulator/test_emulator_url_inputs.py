"""URL inputs: a submit is acknowledged at once, the URLs are fetched afterwards (a few at a time,
each once), and a URL that cannot be fetched fails its task in getResponse."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Origin:
    """A loopback file server that answers each GET after `delay` seconds, and counts them."""

    files: dict[str, bytes]
    delay: float
    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    most_in_flight: int = 0
    served: int = 0  # GETs answered
    hold: bool = False  # while True, every GET waits (it is not answered)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def origin(card: Path, tone880: Path) -> Iterator[Origin]:
    state = Origin(files={"card.mp4": card.read_bytes(), "tone.wav": tone880.read_bytes()}, delay=0.05)

    async def serve(request: Request) -> Response:
        with state.lock:
            state.hits[str(request.url.path) + "?" + request.url.query] += 1
            state.in_flight += 1
            state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            while state.hold:
                await asyncio.sleep(0.02)
            await asyncio.sleep(state.delay)
            body = state.files.get(request.path_params["name"])
            return Response(status_code=404) if body is None else Response(body)
        finally:
            with state.lock:
                state.in_flight -= 1
                state.served += 1

    async def trickle(request: Request) -> Response:
        async def drip() -> Any:
            for _ in range(100):  # a byte every 0.1 s: each read is quick, the whole is not
                yield b"x"
                await asyncio.sleep(0.1)

        return StreamingResponse(drip())

    app = Starlette(routes=[Route("/files/trickle", trickle), Route("/files/{name}", serve)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/files"
    yield state
    server.should_exit = True
    thread.join(10)
    sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def url_task(video: str, audio: str | None = None, **fields: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "sync:3@0",
        "deliveryMethod": "async",
        "inputs": {"video": video, **({"audio": audio} if audio else {})},
        **fields,
    }
    if audio is None and "speech" not in fields:
        task["speech"] = {"text": "hello"}
    return task


def wait_all(api: Any, task_uuids: list[str], timeout: float = 60.0) -> dict[str, list[dict[str, Any]]]:
    """Batch-poll until every task is finished; its final items (data and errors) by taskUUID."""
    deadline = time.monotonic() + timeout
    pending = set(task_uuids)
    final: dict[str, list[dict[str, Any]]] = {}
    while pending and time.monotonic() < deadline:
        body = api.poll(*sorted(pending)).json()
        items: dict[str, list[dict[str, Any]]] = {}
        for item in body.get("data", []) + body.get("errors", []):
            items.setdefault(item["taskUUID"], []).append(item)
        for task_uuid, got in items.items():
            if all(i.get("status") != "processing" for i in got):
                final[task_uuid] = got
                pending.discard(task_uuid)
        time.sleep(0.1)
    assert not pending, f"{len(pending)} tasks did not finish within {timeout} s"
    return final


@pytest.mark.slow
def test_200_url_tasks_are_acknowledged_in_under_a_second_and_each_url_fetched_once(
    emulator: Any, origin: Origin
) -> None:
    api = emulator(latency=0)
    # Each task has a video URL of its own (the old serial fetch would take 200 x 50 ms = 10 s
    # before answering) and the same audio URL (fetched once for all of them).
    tasks = [url_task(f"{origin.url}/card.mp4?n={i}", f"{origin.url}/tone.wav") for i in range(200)]
    start = time.monotonic()
    answers = [api.post(tasks[i : i + 50]) for i in range(0, 200, 50)]
    elapsed = time.monotonic() - start
    assert all(a.status_code == 200 for a in answers), answers[0].text
    acked = [item["taskUUID"] for a in answers for item in a.json()["data"]]
    assert acked == [t["taskUUID"] for t in tasks]
    assert elapsed < 1.0, f"200 URL tasks took {elapsed:.2f} s to acknowledge"

    final = wait_all(api, acked)
    assert all([i["status"] for i in items] == ["success"] for items in final.values())
    assert origin.hits["/files/tone.wav?"] == 1
    assert all(origin.hits[f"/files/card.mp4?n={i}"] == 1 for i in range(200))
    # Concurrent, and bounded (the default is 8 at once).
    assert 2 <= origin.most_in_flight <= 8
    stats = api.stats()
    assert stats["media_fetches"] == 201 and stats["accepted"] == 200 and stats["preparing"] == 0


@pytest.mark.slow
def test_a_url_task_is_acknowledged_as_fast_as_a_poll_is_answered(emulator: Any, origin: Origin) -> None:
    # 200 POSTs of one task each: what they cost is HTTP round trips (several ms each on a busy
    # machine), so the bound is "no slower than 200 polls", not a fixed second. The origin answers no
    # fetch until the submits are done: a submit that waited for its fetch would not be answered at
    # all. Polls and submits alternate, so a busy machine slows both alike.
    api = emulator(latency=60)
    origin.hold = True
    tasks = [url_task(f"{origin.url}/card.mp4?n={i}") for i in range(200)]
    polls, answers, baseline, elapsed = [], [], 0.0, 0.0
    for task in tasks:
        start = time.monotonic()
        polls.append(api.poll(str(uuid.uuid4())).status_code)
        baseline += time.monotonic() - start
        start = time.monotonic()
        answers.append(api.post([task]))
        elapsed += time.monotonic() - start
    assert origin.served == 0  # every submit was answered before any of its URLs was
    origin.hold = False
    assert polls == [404] * 200 and [a.status_code for a in answers] == [200] * 200
    assert elapsed < 3 * baseline + 1.0, f"200 submits took {elapsed:.2f} s, 200 polls {baseline:.2f} s"
    assert api.stats()["accepted"] == 200


def test_an_unreachable_input_url_is_acknowledged_then_fails_in_get_response(emulator: Any) -> None:
    api = emulator(latency=0)
    dead = f"http://127.0.0.1:{closed_port()}/gone.mp4"
    answer = api.post([url_task(dead)])
    assert answer.status_code == 200, answer.text
    task_uuid = answer.json()["data"][0]["taskUUID"]
    body = api.poll(task_uuid).json()
    deadline = time.monotonic() + 20
    while body.get("data") and body["data"][0].get("status") == "processing" and time.monotonic() < deadline:
        time.sleep(0.05)
        body = api.poll(task_uuid).json()
    assert body.get("data", []) == []
    [error] = body["errors"]
    assert error["code"] == "invalidMediaReference" and error["status"] == "error"
    assert error["taskUUID"] == task_uuid and error["taskType"] == "videoInference"
    assert error["parameter"] == "inputs.video" and "could not fetch" in error["message"]
    assert "127.0.0.1" in error["message"]


def test_a_failed_fetch_is_remembered_and_not_retried_by_every_task(emulator: Any, origin: Origin) -> None:
    api = emulator(latency=0)
    missing = f"{origin.url}/missing.mp4"
    tasks = [url_task(missing) for _ in range(5)]
    assert api.post(tasks).status_code == 200
    final = wait_all(api, [t["taskUUID"] for t in tasks])
    for items in final.values():
        [error] = items
        assert error["code"] == "invalidMediaReference" and "HTTP 404" in error["message"]
    later = url_task(missing)
    assert api.post([later]).status_code == 200
    [error] = wait_all(api, [later["taskUUID"]])[later["taskUUID"]]
    assert "HTTP 404" in error["message"]
    assert origin.hits["/files/missing.mp4?"] == 1
    assert api.stats()["media_fetch_failures"] == 1


def test_a_remembered_failure_is_fetched_again_after_its_memory_ends(emulator: Any, origin: Origin) -> None:
    api = emulator(latency=0, fetch_memory_s=30)
    first = url_task(f"{origin.url}/late.mp4")
    api.post([first])
    wait_all(api, [first["taskUUID"]])
    origin.files["late.mp4"] = origin.files["card.mp4"]  # the file appears later
    api.url.advance(31)
    second = url_task(f"{origin.url}/late.mp4")
    api.post([second])
    [item] = wait_all(api, [second["taskUUID"]])[second["taskUUID"]]
    assert item["status"] == "success"
    assert origin.hits["/files/late.mp4?"] == 2


def test_a_url_that_is_no_video_fails_the_task_in_get_response(emulator: Any, origin: Origin) -> None:
    api = emulator(latency=0)
    task = url_task(f"{origin.url}/tone.wav")  # audio where the video should be
    assert api.post([task]).status_code == 200
    [error] = wait_all(api, [task["taskUUID"]])[task["taskUUID"]]
    assert error["code"] == "invalidParameter" and error["parameter"] == "inputs.video"
    assert error["taskUUID"] == task["taskUUID"]


def test_url_tasks_beyond_the_credits_fail_once_their_cost_is_known(emulator: Any, origin: Origin) -> None:
    api = emulator(latency=0, credits_usd=0.5, price_per_second=0.13)  # one 3 s job costs 0.39
    first, second = url_task(f"{origin.url}/card.mp4"), url_task(f"{origin.url}/card.mp4?b")
    assert api.post([first, second]).status_code == 200
    final = wait_all(api, [first["taskUUID"], second["taskUUID"]])
    outcomes = sorted(items[0].get("code") or items[0]["status"] for items in final.values())
    assert outcomes == ["insufficientCredits", "success"]
    assert api.stats()["credits_left_usd"] == pytest.approx(0.11, abs=0.01)


def test_a_webhook_reports_the_failed_fetch(emulator: Any, receiver: Any) -> None:
    api = emulator(latency=0)
    dead = f"http://127.0.0.1:{closed_port()}/gone.mp4"
    task = url_task(dead, webhookURL=f"{receiver.url}/hook")
    assert api.post([task]).status_code == 200
    [(_, _, body)] = receiver.wait_for("POST", 1)
    assert b"invalidMediaReference" in body and task["taskUUID"].encode() in body


def test_inputs_already_held_are_still_checked_at_submit(emulator: Any, card: Path) -> None:
    # Nothing to fetch: a missing upload is refused in the submit's own answer, as before.
    api = emulator()
    answer = api.post([url_task(f"{api.url.root_url}/media/{uuid.uuid4()}.mp4")])
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalidMediaReference"


def test_a_trickling_input_url_fails_its_task_at_the_fetch_deadline(emulator: Any, origin: Origin) -> None:
    api = emulator(latency=0, fetch_timeout=0.5)  # reads within 0.5 s, the whole within 2 s
    task = url_task(f"{origin.url}/trickle")
    start = time.monotonic()
    assert api.post([task]).status_code == 200
    [error] = wait_all(api, [task["taskUUID"]], timeout=20)[task["taskUUID"]]
    assert error["code"] == "invalidMediaReference" and "longer than 2 s" in error["message"]
    assert time.monotonic() - start < 6
