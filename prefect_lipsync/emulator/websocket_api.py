"""The emulator's WebSocket face (`ws://HOST:PORT/v1`): the task JSON of POST /v1 on one connection.

The handshake as the official clients speak it (runware-sdk's `transport/websocket.py`,
@runware/sdk-js):
- the first message is `[{"taskType":"authentication","apiKey":K}]`, with
  `connectionSessionUUID` on a reconnect; the answer is
  `{"data":[{"taskType":"authentication","connectionSessionUUID":S}]}` (S is the presented one
  when this emulator handed it out). The JS client matches it by taskType, so it has no taskUUID.
  A bad key is answered `{"errors":[{"code":"invalidApiKey","taskType":"authentication",...}]}`
  and the socket is closed.
- Every message is a JSON array of tasks. Each task's answer is a frame of its own,
  `{"data":[...]}` or `{"errors":[...]}`: the clients route frames by taskUUID, and the Python one
  reads only `errors` of a frame that has both.
- `[{"taskType":"ping","ping":true}]` is answered `{"data":[{"taskType":"ping","pong":true}]}`.
Faults apply per message as they do per POST: a dropped connection, an error frame (no HTML here),
a rate limit, a slow answer, an accepted submit whose ACK is lost (connection dropped, or silence).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from prefect_lipsync.emulator import strict_json
from prefect_lipsync.emulator.connections import abort_connection, forget_connection
from prefect_lipsync.emulator.errors import error_item
from prefect_lipsync.emulator.service import Answer, Emulator
from prefect_lipsync.emulator.strict_json import BodyError

POLICY_VIOLATION = 1008
_PARSE_IN_THREAD_CHARS = 1024 * 1024
_SEND_ERRORS = (WebSocketDisconnect, RuntimeError, OSError)


def bearer_key(header: str) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None."""
    scheme, _, key = header.partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    return None


class Connection:
    """One client's socket: authentication state, and the messages it has in progress."""

    def __init__(self, ws: WebSocket, emulator: Emulator, key_ok: Callable[[str | None], bool]) -> None:
        self.ws = ws
        self.emulator = emulator
        self.key_ok = key_ok
        self.authenticated = False
        self._send_lock = asyncio.Lock()
        # Tasks run in the order their messages came (a poll sent right after a submit sees the
        # task), off the receive loop, so pings are answered while an upload is decoded.
        self._order_lock = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()
        root = str(ws.base_url).rstrip("/").replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        self.outputs_url, self.media_url = f"{root}/outputs", f"{root}/media"

    async def serve(self) -> None:
        await self.ws.accept()
        self.emulator.stats.bump("ws_connections")
        header_key = bearer_key(self.ws.headers.get("authorization", ""))
        self.authenticated = header_key is not None and self.key_ok(header_key)
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                raw = message.get("text")
                if raw is None:
                    raw = message.get("bytes")
                if raw is not None and not await self._on_message(raw):
                    return
        except WebSocketDisconnect:
            return
        finally:
            for task in list(self._running):
                task.cancel()
            forget_connection(dict(self.ws.scope))

    # ------------------------------------------------------------------ one message

    async def _on_message(self, raw: str | bytes) -> bool:
        """Parse, answer pings, authenticate, then queue the tasks; False ends the connection."""
        self.emulator.stats.bump("ws_messages")
        try:
            if len(raw) > _PARSE_IN_THREAD_CHARS:
                tasks = await anyio.to_thread.run_sync(strict_json.loads, raw)
            else:
                tasks = strict_json.loads(raw)
        except BodyError as exc:
            await self._send({"errors": [error_item("invalidRequestBody", str(exc))]})
            return True
        if not isinstance(tasks, list) or not tasks:
            message = "a message must be a non-empty JSON array of task objects"
            await self._send({"errors": [error_item("invalidRequestBody", message)]})
            return True
        work: list[Any] = []
        for task in tasks:
            task_type = task.get("taskType") if isinstance(task, dict) else None
            if task_type == "ping":
                await self._send({"data": [{"taskType": "ping", "pong": True}]})
            elif task_type == "authentication":
                if not await self._authenticate(task):
                    return False
            else:
                work.append(task)
        if not work:
            return True
        if not self.authenticated:
            await self._send_each(
                error_item(
                    "missingApiKey",
                    'authenticate first: send [{"taskType": "authentication", "apiKey": "<key>"}]',
                    task_type=str(t.get("taskType")) if isinstance(t, dict) else None,
                    task_uuid=_uuid_of(t),
                )
                for t in work
            )
            return True
        self._spawn(self._run_tasks(work))
        return True

    async def _authenticate(self, task: dict[str, Any]) -> bool:
        key = task.get("apiKey")
        if not isinstance(key, str) or not self.key_ok(key):
            code = "missingApiKey" if key is None else "invalidApiKey"
            message = "the API key is missing" if key is None else "the API key is not valid"
            error = error_item(code, message, parameter="apiKey", task_type="authentication")
            await self._send({"errors": [error]})
            with contextlib.suppress(*_SEND_ERRORS):
                await self.ws.close(POLICY_VIOLATION)
            return False
        self.authenticated = True
        session = self.emulator.session_for(task)
        await self._send({"data": [{"taskType": "authentication", "connectionSessionUUID": session}]})
        return True

    async def _run_tasks(self, tasks: list[Any]) -> None:
        async with self._order_lock:  # FIFO: messages are handled in the order they came
            await self._answer_tasks(tasks)

    async def _answer_tasks(self, tasks: list[Any]) -> None:
        emulator = self.emulator
        faults = emulator.faults
        if faults.drop():
            emulator.stats.bump("fault_drops")
            await self._drop()
            return
        fault = faults.http_error()
        if fault is not None:
            emulator.stats.bump("fault_http_errors")
            message = f"{fault.reason} (emulated fault)"
            await self._send_each(error_item(fault.code, message, task_uuid=_uuid_of(t)) for t in tasks)
            return
        if faults.rate_limited() is not None:
            emulator.stats.bump("fault_rate_limited")
            message = "too many requests per second (emulated rate limit)"
            await self._send_each(
                error_item("rateLimitExceeded", message, task_uuid=_uuid_of(t)) for t in tasks
            )
            return
        if faults.slow():
            emulator.stats.bump("fault_slow")
            await asyncio.sleep(emulator.config.slow_seconds)
        polls = sum(1 for t in tasks if isinstance(t, dict) and t.get("taskType") == "getResponse")
        if emulator.config.reject_batch_polls and polls > 1:
            emulator.stats.bump("batch_poll_rejections")
            message = f"only one getResponse task per request is allowed here, got {polls}"
            await self._send_each(
                error_item("unsupportedBatchRequest", message, task_type="getResponse", task_uuid=_uuid_of(t))
                for t in tasks
            )
            return
        answer = await emulator.handle_tasks(tasks, self.outputs_url, self.media_url)
        if answer.accepted:
            lost = faults.lose_submit()
            if lost is not None:
                emulator.stats.bump("fault_lost_submits")
                if lost == "drop":
                    await self._drop()
                return  # the tasks were accepted; their ACK never arrives
        for frame in frames_of(answer):
            await self._send(frame)

    # ------------------------------------------------------------------ sending

    async def _send(self, frame: dict[str, Any]) -> None:
        text = json.dumps(frame)
        async with self._send_lock:
            with contextlib.suppress(*_SEND_ERRORS):
                await self.ws.send_text(text)

    async def _send_each(self, errors: Any) -> None:
        """One error frame per task (each routed by its own taskUUID)."""
        for error in errors:
            await self._send({"errors": [error]})

    async def _drop(self) -> None:
        if not abort_connection(dict(self.ws.scope)):
            with contextlib.suppress(*_SEND_ERRORS):
                await self.ws.close(1011)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)


def frames_of(answer: Answer) -> list[dict[str, Any]]:
    """The answer split into one frame per taskUUID, in order; what names no task goes last.

    An accepted task whose ACK item the `empty_ack` quirk left out still gets its ACK here: over
    a socket, a frame that names no task cannot be routed, and the client would wait for it.
    """
    routed: dict[str, dict[str, list[dict[str, Any]]]] = {}
    loose: dict[str, list[dict[str, Any]]] = {"data": [], "errors": []}

    def slot(item: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        task_uuid = item.get("taskUUID")
        if not isinstance(task_uuid, str):
            return loose
        return routed.setdefault(task_uuid, {"data": [], "errors": []})

    for item in answer.data:
        slot(item)["data"].append(item)
    for error in answer.errors:
        slot(error)["errors"].append(error)
    for task_uuid in answer.accepted:
        parts = routed.setdefault(task_uuid, {"data": [], "errors": []})
        if not parts["data"]:
            parts["data"].append({"taskType": "videoInference", "taskUUID": task_uuid})
    frames = []
    for parts in [*routed.values(), loose]:
        frame = {name: items for name, items in parts.items() if items}
        if frame:
            frames.append(frame)
    return frames


def _uuid_of(task: Any) -> str | None:
    value = task.get("taskUUID") if isinstance(task, dict) else None
    return value if isinstance(value, str) else None


def websocket_endpoint_for(
    emulator: Emulator, key_ok: Callable[[str | None], bool]
) -> Callable[[WebSocket], Coroutine[Any, Any, None]]:
    """The Starlette WebSocket endpoint serving `emulator`."""

    async def endpoint(ws: WebSocket) -> None:
        await Connection(ws, emulator, key_ok).serve()

    return endpoint
