"""Downloading media URLs named by tasks: in the background, a few at a time, each URL once.

The service acknowledges an async task before it has its inputs; so does the emulator. Every URL
is fetched at most once per `remember_s` seconds: concurrent tasks naming it share one download,
and later ones reuse the file, or the failure (an unreachable host is not asked again by each of
200 tasks). Files with the same bytes are kept once, so a probe of one serves them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from prefect_lipsync.emulator.store import MediaRefError, sniff_extension


@dataclass
class _Fetch:
    task: asyncio.Task[Path]
    done_at: float | None = None


class UrlFetcher:
    """Fetches URLs into `root`, at most `max_parallel` at once; remembers outcomes for `remember_s`."""

    def __init__(
        self,
        root: Path,
        *,
        timeout: float,
        max_parallel: int,
        remember_s: float,
        now: Callable[[], float],
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max(1, max_parallel))
        self._remember_s = remember_s
        self._now = now
        self._fetches: dict[str, _Fetch] = {}
        self._by_digest: dict[str, Path] = {}
        self._client: httpx.AsyncClient | None = None
        self.fetch_count = 0
        self.failure_count = 0

    def attach(self, client: httpx.AsyncClient) -> None:
        self._client = client

    def clear(self) -> None:
        for fetch in self._fetches.values():
            fetch.task.cancel()
        for path in self._by_digest.values():
            path.unlink(missing_ok=True)
        self._fetches.clear()
        self._by_digest.clear()
        self.fetch_count = self.failure_count = 0

    async def fetch(self, url: str) -> Path:
        """The local copy of `url`; MediaRefError when it cannot be had (remembered too)."""
        fetch = self._fetches.get(url)
        if fetch is None or self._stale(fetch):
            fetch = _Fetch(asyncio.get_running_loop().create_task(self._download(url)))
            fetch.task.add_done_callback(functools.partial(self._settled, fetch))
            self._fetches[url] = fetch
        # shield: a waiter that is cancelled (its client went away) does not cancel the shared download.
        return await asyncio.shield(fetch.task)

    def _stale(self, fetch: _Fetch) -> bool:
        if fetch.done_at is None:
            return False  # still running: join it
        if fetch.task.cancelled():
            return True
        if fetch.task.exception() is None and not fetch.task.result().exists():
            return True
        return self._now() - fetch.done_at >= self._remember_s

    def _settled(self, fetch: _Fetch, task: asyncio.Task[Path]) -> None:
        fetch.done_at = self._now()
        if not task.cancelled() and task.exception() is not None:
            self.failure_count += 1

    async def _download(self, url: str) -> Path:
        client = self._client
        if client is None:
            raise RuntimeError("UrlFetcher.attach(client) was not called")
        async with self._slots:
            fd, tmp_name = tempfile.mkstemp(prefix=".fetch-", dir=self.root)
            tmp = Path(tmp_name)
            digest = hashlib.sha256()
            # Each read within `timeout`, a connect within 5 s, and the whole within 4 x `timeout`:
            # a server trickling bytes cannot hold a task in "processing" for ever.
            timeout = httpx.Timeout(self._timeout, connect=min(5.0, self._timeout))
            deadline = 4 * self._timeout
            try:
                with os.fdopen(fd, "wb") as out:
                    async with asyncio.timeout(deadline):
                        async with client.stream("GET", url, timeout=timeout) as response:
                            if response.status_code != 200:
                                raise MediaRefError(
                                    f"fetching {safe_url(url)} answered HTTP {response.status_code}"
                                )
                            async for chunk in response.aiter_bytes():
                                digest.update(chunk)
                                out.write(chunk)
            except httpx.HTTPError as exc:
                tmp.unlink(missing_ok=True)
                raise MediaRefError(f"could not fetch {safe_url(url)}: {type(exc).__name__}") from None
            except TimeoutError:
                tmp.unlink(missing_ok=True)
                raise MediaRefError(f"fetching {safe_url(url)} took longer than {deadline:g} s") from None
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        self.fetch_count += 1
        known = self._by_digest.get(digest.hexdigest())
        if known is not None and known.exists():
            tmp.unlink(missing_ok=True)
            return known
        with tmp.open("rb") as fh:
            ext = sniff_extension(fh.read(16))
        final = self.root / f"fetched-{uuid.uuid4()}{ext}"
        os.replace(tmp, final)
        self._by_digest[digest.hexdigest()] = final
        return final

    async def aclose(self) -> None:
        tasks = [fetch.task for fetch in self._fetches.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


def safe_url(url: str) -> str:
    """A URL without its query (presigned URLs carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
