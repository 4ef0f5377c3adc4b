"""A blocking facade over `RunwareClient` for sync callers (sync Prefect tasks, scripts, the CLI).

The async client lives in its own event loop on a private thread, so the facade works both where
no loop runs and inside a thread whose loop is busy (where `asyncio.run` would refuse). One
facade keeps one client: one poller, one upload cache, one connection pool.

    with SyncRunwareClient(api_key=key) as client:
        results = client.lipsync_many(requests)
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from prefect_lipsync.runware.client import RunwareClient
from prefect_lipsync.runware.models import MediaUpload, Sync3Request, Sync3Result
from prefect_lipsync.runware.uploads import Source

T = TypeVar("T")


class SyncRunwareClient:
    """`RunwareClient`'s methods, blocking. Takes the same arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="runware-client", daemon=True)
        self._thread.start()
        self._closed = False

        async def build() -> RunwareClient:
            client = RunwareClient(*args, **kwargs)
            return await client.__aenter__()

        try:
            self._client = self._call(build())
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        return f"Sync{self._client!r}"

    @property
    def client(self) -> RunwareClient:
        """The async client underneath (use it only through `call`)."""
        return self._client

    def call(self, fn: Callable[[RunwareClient], Awaitable[T]]) -> T:
        """Run `fn(async_client)` in the client's loop and return its result."""

        async def run() -> T:
            return await fn(self._client)

        return self._call(run())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the Runware client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call(self._client.aclose())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ------------------------------------------------------------------ the client's methods

    def upload(self, source: Source) -> MediaUpload:
        return self._call(self._client.upload(source))

    def upload_local_refs(self, request: Sync3Request, *, nonce: str | int | None = None) -> Sync3Request:
        return self._call(self._client.upload_local_refs(request, nonce=nonce))

    def submit(self, request: Sync3Request, *, nonce: str | int | None = None) -> str:
        return self._call(self._client.submit(request, nonce=nonce))

    def submit_many(self, requests: Sequence[Sync3Request], *, nonce: str | int | None = None) -> list[str]:
        return self._call(self._client.submit_many(requests, nonce=nonce))

    def wait(
        self, task_uuid: str, number_results: int = 1, timeout: float | None = None
    ) -> list[Sync3Result]:
        return self._call(self._client.wait(task_uuid, number_results, timeout))

    def wait_many(
        self, task_uuids: Sequence[str], number_results: int | Sequence[int] = 1, timeout: float | None = None
    ) -> list[list[Sync3Result]]:
        return self._call(self._client.wait_many(task_uuids, number_results, timeout))

    def lipsync(
        self, request: Sync3Request, *, timeout: float | None = None, nonce: str | int | None = None
    ) -> list[Sync3Result]:
        return self._call(self._client.lipsync(request, timeout=timeout, nonce=nonce))

    def lipsync_many(
        self,
        requests: Sequence[Sync3Request],
        *,
        timeout: float | None = None,
        nonce: str | int | None = None,
    ) -> list[list[Sync3Result]]:
        return self._call(self._client.lipsync_many(requests, timeout=timeout, nonce=nonce))

    def download(
        self,
        result: Sync3Result | str,
        dest: str | os.PathLike[str],
        *,
        expected_duration_s: float | None = None,
    ) -> Path:
        return self._call(self._client.download(result, dest, expected_duration_s=expected_duration_s))

    def was_accepted(self, task_uuid: str) -> bool | None:
        return self._client.was_accepted(task_uuid)
