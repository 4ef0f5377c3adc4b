"""A busy or failing Prefect API, for real: a loopback proxy in front of a real Prefect server that
answers some requests 503 or 429 itself, drops some connections without an answer, or, during an
outage, answers every request 503 and refuses websockets. Everything else passes through untouched,
websockets (Prefect's events) included.

Each HTTP request gets its own upstream connection (`Connection: close`), so each is judged on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024


@dataclass
class Faults:
    busy_rate: float = 0.0  # answered 503 (or 429 with Retry-After, one in three)
    drop_rate: float = 0.0  # the connection closed without an answer
    outage: bool = False  # every request 503, websockets refused
    seed: int = 7
    counts: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def decide(self, websocket: bool) -> str:
        if self.outage:
            return "outage"
        if websocket:
            return "pass"
        roll = self._rng.random()
        if roll < self.drop_rate:
            return "drop"
        if roll < self.drop_rate + self.busy_rate:
            return "429" if self._rng.random() < 1 / 3 else "503"
        return "pass"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _answer(status: str) -> bytes:
    reason = {"503": "Service Unavailable", "429": "Too Many Requests"}[status]
    body = b'{"detail":"flaky test proxy"}'
    extra = "Retry-After: 1\r\n" if status == "429" else ""
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode() + body


class FlakyApi:
    """`with FlakyApi(upstream_api_url, faults) as api_url:` a proxy on a free loopback port."""

    def __init__(self, upstream_api_url: str, faults: Faults) -> None:
        parts = urlsplit(upstream_api_url)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.api_path = parts.path
        self.faults = faults
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = 0

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            head = await client_reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            client_writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        websocket = any(line.lower().startswith("upgrade: websocket") for line in lines)
        verdict = self.faults.decide(websocket)
        self.faults.counts[verdict] += 1
        if verdict == "drop":
            client_writer.close()
            return
        if verdict in ("503", "429", "outage"):
            with contextlib.suppress(ConnectionError):
                client_writer.write(_answer("429" if verdict == "429" else "503"))
                await client_writer.drain()
            client_writer.close()
            return
        if not websocket:  # one request per connection, so the next one is judged on its own
            kept = [line for line in lines[1:] if line and not line.lower().startswith("connection:")]
            head = "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1")
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            client_writer.close()
            return
        upstream_writer.write(head)
        await upstream_writer.drain()
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=HEAD_LIMIT)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    def __enter__(self) -> str:
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(),), daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the flaky API proxy did not start")
        return f"http://127.0.0.1:{self.port}{self.api_path}"

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
