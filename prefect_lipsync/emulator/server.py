"""Running the emulator: in-process (`run_emulator`, uvicorn on its own thread and loop) or served
from the command line (`serve`, the same thing until Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from prefect_lipsync.emulator.app import create_app
from prefect_lipsync.emulator.config import EmulatorConfig
from prefect_lipsync.emulator.connections import DroppableH11Protocol
from prefect_lipsync.emulator.service import Emulator

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class EmulatorURL(str):
    """The API base URL (`http://127.0.0.1:PORT/v1`), with handles on the running emulator."""

    emulator: Emulator
    config: EmulatorConfig
    _loop: asyncio.AbstractEventLoop

    @property
    def base_url(self) -> str:
        return str(self)

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT` (outputs are under /outputs, uploads under /media)."""
        return str(self).removesuffix("/v1")

    def _call(self, fn: Any) -> Any:
        """Run `fn()` on the emulator's loop (its state belongs to that thread) and return its value."""

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    def stats(self) -> dict[str, Any]:
        """The same counters as GET /_emulator/stats."""
        snapshot: dict[str, Any] = json.loads(json.dumps(self._call(self.emulator.snapshot)))
        return snapshot  # a deep copy, detached from the live state

    def reset(self) -> None:
        self._call(self.emulator.reset)

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward: jobs finish and outputs expire without waiting."""
        self._call(lambda: self.emulator.clock.advance(seconds))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it, keep-alive answers wait ~40 ms on delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def run_emulator(
    *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", **options: Any
) -> Iterator[EmulatorURL]:
    """Start the emulator on a background thread; yield its base URL (a `str`), stop it on exit.

    `options` are the fields of `EmulatorConfig` (latency, seed, http_error_rate, drop_rate,
    lose_submit_rate, task_error_rate, api_key, price_per_second, credits_usd, ...). Port 0 picks
    a free port.

        with run_emulator(latency=0.5, seed=1) as base_url:
            httpx.post(base_url, json=[...], headers={"Authorization": "Bearer k"})
            base_url.stats()["accepted"]
    """
    config = EmulatorConfig.from_options(**options)
    own_storage = config.storage_dir is None
    storage = (
        Path(tempfile.mkdtemp(prefix="lipsync-emulator-")) if own_storage else Path(config.storage_dir or ".")
    )
    storage.mkdir(parents=True, exist_ok=True)
    sock = _bind(host, port)
    app = create_app(config, storage)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=DroppableH11Protocol,
            ws="websockets-sansio",
            ws_max_size=config.ws_max_message_bytes,
            lifespan="on",
            # No dictConfig of uvicorn's own: it closes every handler of the host process, and in a
            # flow that stops Prefect's API log and events workers mid-run (lost events, ERROR lines).
            log_config=None,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
    )
    loop_box: dict[str, asyncio.AbstractEventLoop] = {}
    failure: list[BaseException] = []

    def serve() -> None:
        async def main() -> None:
            loop_box["loop"] = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)

    thread = threading.Thread(target=serve, name="lipsync-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if failure or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the emulator did not start: {failure[0] if failure else 'thread ended'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the emulator did not start within {START_TIMEOUT_S:g} s")
        time.sleep(0.01)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = EmulatorURL(f"http://{shown_host}:{bound_port}/v1")
    url.emulator = app.state.emulator
    url.config = config
    url._loop = loop_box["loop"]
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()
        if own_storage:
            shutil.rmtree(storage, ignore_errors=True)
