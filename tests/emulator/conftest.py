"""Fixtures for the emulator tests: tiny generated media, emulators, a webhook receiver, audio probes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from prefect_lipsync.emulator import EmulatorURL, run_emulator
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg, run_ffprobe_json
from prefect_lipsync.media.synth import make_talking_card, make_tone

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
VIDEO_SECONDS = 3.0
VIDEO_SIZE = (160, 90)
ORIGINAL_HZ = 220


# --------------------------------------------------------------------------- media


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-media")


@pytest.fixture(scope="session")
def card(media_dir: Path) -> Path:
    """A 3 s 160x90 25 fps talking card whose own audio is a 220 Hz tone."""
    return make_talking_card(
        media_dir / "card.mp4", duration=VIDEO_SECONDS, size=VIDEO_SIZE, tone_hz=ORIGINAL_HZ
    )


@pytest.fixture(scope="session")
def mute_card(media_dir: Path) -> Path:
    """The same card without an audio stream."""
    return make_talking_card(media_dir / "mute.mp4", duration=VIDEO_SECONDS, size=VIDEO_SIZE, audio=False)


@pytest.fixture(scope="session")
def tone880(media_dir: Path) -> Path:
    return make_tone(media_dir / "tone880.wav", duration=2.0, frequency=880)


@pytest.fixture(scope="session")
def long_tone(media_dir: Path) -> Path:
    """A 660 Hz tone longer than the video."""
    return make_tone(media_dir / "tone660-5s.wav", duration=5.0, frequency=660)


@pytest.fixture(scope="session")
def two_tone(media_dir: Path) -> Path:
    """1 s of 440 Hz then 1 s of 1320 Hz: direction and position are audible in the output."""
    low = make_tone(media_dir / "low.wav", duration=1.0, frequency=440)
    high = make_tone(media_dir / "high.wav", duration=1.0, frequency=1320)
    out = media_dir / "two_tone.wav"
    run_ffmpeg(
        ["-y", "-i", str(low), "-i", str(high), "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", str(out)]
    )
    return out


# --------------------------------------------------------------------------- audio analysis


@dataclass(frozen=True)
class AudioProbe:
    """Mono 16 kHz samples of a file's audio, to ask what plays when."""

    samples: np.ndarray[Any, np.dtype[np.float32]]
    rate: int = 16000

    @classmethod
    def of(cls, path: Path) -> AudioProbe:
        done = run_ffmpeg(["-i", str(path), "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"])
        return cls(np.frombuffer(done.stdout, dtype=np.float32))

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    def window(self, start: float, end: float) -> np.ndarray[Any, np.dtype[np.float32]]:
        return self.samples[int(start * self.rate) : int(end * self.rate)]

    def rms(self, start: float, end: float) -> float:
        chunk = self.window(start, end)
        return float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))) if len(chunk) else 0.0

    def dominant_hz(self, start: float, end: float) -> float:
        chunk = self.window(start, end).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk))))
        freqs = np.fft.rfftfreq(len(chunk), 1 / self.rate)
        return float(freqs[int(np.argmax(spectrum))])


@pytest.fixture
def audio_probe() -> Callable[[Path], AudioProbe]:
    return AudioProbe.of


def probe(path: Path) -> dict[str, Any]:
    return run_ffprobe_json(path)


@pytest.fixture
def ffprobe() -> Callable[[Path], dict[str, Any]]:
    return probe


# --------------------------------------------------------------------------- emulators and a client


class Api:
    """A small synchronous client of one emulator, for tests."""

    def __init__(self, base_url: EmulatorURL) -> None:
        self.url = base_url
        self.http = httpx.Client(timeout=60)

    def close(self) -> None:
        self.http.close()

    def post(self, tasks: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(self.url, json=tasks, headers=AUTH if headers is None else headers)

    def upload(self, path: Path, *, data_uri: bool = False) -> dict[str, Any]:
        encoded = base64.b64encode(path.read_bytes()).decode()
        media = f"data:application/octet-stream;base64,{encoded}" if data_uri else encoded
        task = {
            "taskType": "mediaStorage",
            "taskUUID": str(uuid.uuid4()),
            "operation": "upload",
            "media": media,
        }
        answer = self.post([task])
        assert answer.status_code == 200, answer.text
        item: dict[str, Any] = answer.json()["data"][0]
        return item

    def submit(self, **fields: Any) -> httpx.Response:
        task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "sync:3@0", **fields}
        return self.post([task])

    def poll(self, *task_uuids: str) -> httpx.Response:
        return self.post([{"taskType": "getResponse", "taskUUID": t} for t in task_uuids])

    def wait(self, task_uuid: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until the task is finished; its final items (data and errors)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.poll(task_uuid).json()
            items = body.get("data", []) + body.get("errors", [])
            if items and all(i.get("status") != "processing" for i in items):
                return items
            time.sleep(0.05)
        raise AssertionError(f"task {task_uuid} did not finish within {timeout} s")

    def run(self, **fields: Any) -> list[dict[str, Any]]:
        answer = self.submit(**fields)
        assert answer.status_code == 200, answer.text
        return self.wait(answer.json()["data"][0]["taskUUID"])

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get(f"{self.url.root_url}/_emulator/stats").json()
        return stats


@pytest.fixture
def emulator() -> Iterator[Callable[..., Api]]:
    """`emulator(**options)` starts an emulator (stopped after the test) and gives a client of it."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> Api:
            options.setdefault("latency", 0.2)
            url = stack.enter_context(run_emulator(**options))
            api = Api(url)
            stack.callback(api.close)
            return api

        yield start


# --------------------------------------------------------------------------- a webhook receiver


@dataclass
class Receiver:
    """A loopback HTTP server that records what it is sent; the first `fail_first` calls get a 500."""

    url: str = ""
    fail_first: int = 0
    calls: list[tuple[str, str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, method: str) -> list[tuple[str, str, bytes]]:
        with self.lock:
            return [c for c in self.calls if c[0] == method]

    def wait_for(self, method: str, count: int, timeout: float = 20.0) -> list[tuple[str, str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(method)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {count} {method} calls, got {len(self.received(method))}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    async def record(request: Request) -> Response:
        body = await request.body()
        with state.lock:
            state.calls.append((request.method, str(request.url), body))
            failing = len(state.calls) <= state.fail_first
        return JSONResponse({"ok": not failing}, status_code=500 if failing else 200)

    app = Starlette(routes=[Route("/{path:path}", record, methods=["POST", "PUT"])])
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield state
    server.should_exit = True
    thread.join(10)
    sock.close()
