"""Fixtures of the runware client tests: tiny real media, the emulator, a scripted loopback server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.emulator import EmulatorURL, run_emulator
from prefect_lipsync.media.synth import make_talking_card, make_tone
from prefect_lipsync.runware import PollPolicy, RetryPolicy, Sync3Request

API_KEY = "sk-test-0123456789abcdef-not-a-real-key"
FAST_POLL = PollPolicy(first_delay=0.05, interval=0.05, factor=1.5, max_interval=0.25, not_found_grace=2.0)
FAST_RETRY = RetryPolicy(
    attempts=10, initial_delay=0.01, max_delay=0.1, jitter=0.02, total_time=30, max_retry_after=0.1
)


@dataclass(frozen=True)
class Media:
    video: Path
    audio: Path


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("runware-media")
    video = make_talking_card(root / "face.mp4", duration=1.0, size=(160, 120))
    audio = make_tone(root / "voice.wav", duration=1.0)
    return Media(video, audio)


@pytest.fixture
def emulator() -> Iterator[Callable[..., contextlib.AbstractContextManager[EmulatorURL]]]:
    """`with emulator(latency=..., ...) as url:` starts a fresh emulator for one test."""
    yield run_emulator


def requests_for(video: str, audio_url: str, count: int, **extra: Any) -> list[Sync3Request]:
    """`count` distinct sync-3 requests (they differ in outputQuality and syncMode, so in content;
    ttl is a delivery detail and does not make a request distinct)."""
    modes = ("cut_off", "silence", "bounce", "remap")
    return [
        Sync3Request.model_validate(
            {
                "inputs": {"video": video, "audio": audio_url},
                "outputQuality": 20 + i % 80,
                "settings": {"syncMode": modes[(i // 80) % 4]},
                **extra,
            }
        )
        for i in range(count)
    ]


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Send only this many body bytes, then close (a cut-short download).
    cut_after: int | None = None


@dataclass
class Script:
    """Answers given in order (the last one repeats); what was asked is kept."""

    replies: list[Reply]
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def next(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@contextlib.contextmanager
def scripted_server(replies: list[Reply]) -> Iterator[Script]:
    """A real HTTP server on 127.0.0.1 that answers from a script (one status per test, not a mock)."""
    script = Script(list(replies))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            script.seen.append((self.command, self.path, dict(self.headers), body))
            reply = script.next()
            payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            content_type = "application/octet-stream" if isinstance(reply.body, bytes) else "application/json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            if reply.cut_after is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload if reply.cut_after is None else payload[: reply.cut_after])
            self.wfile.flush()
            if reply.cut_after is not None:
                self.close_connection = True

        do_GET = _serve
        do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Trickle:
    """A trickling server's URL and the requests it received (method, path, body)."""

    url: str = ""
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)


def http_answer(
    status: int, body: bytes, *, content_length: bool = True, ctype: str = "application/json"
) -> bytes:
    """A raw HTTP/1.1 answer (without Content-Length: ended by closing the connection)."""
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {ctype}", "Connection: close"]
    if content_length:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@contextlib.contextmanager
def trickling_server(answer: bytes, *, delay: float = 0.2, head_at_once: bool = False) -> Iterator[Trickle]:
    """A loopback socket server that sends `answer` one byte every `delay` seconds.

    Every read of the client gets a byte well within its timeout; only an overall deadline ends
    the exchange. With `head_at_once`, the status line and headers come at once and the body
    trickles (a download whose length is known). delay=0 sends it all at once.
    """
    import socket

    state = Trickle()
    stop = threading.Event()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    state.url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                part = conn.recv(65536)
                if not part:
                    return
                data += part
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = next(
                (int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:")), 0
            )
            while len(body) < length:
                part = conn.recv(65536)
                if not part:
                    return
                body += part
            state.seen.append((method, path, body))
            split = answer.index(b"\r\n\r\n") + 4 if head_at_once else 0
            try:
                if split:
                    conn.sendall(answer[:split])
                for i in range(split, len(answer)):
                    if stop.is_set():
                        return
                    conn.sendall(answer[i : i + 1] if delay else answer[i:])
                    if not delay:
                        break
                    time.sleep(delay)
            except OSError:  # the client gave up: that is the point
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
