"""Result downloads: streamed to a temp file next to the target, renamed into place when complete.

A result URL may answer 404/422/502 for a few seconds right after the task succeeded, so those
are retried for a short window; transient failures (408, 429, 5xx, resets, a short body) are
retried with backoff. The final file exists only if every byte arrived (checked against
Content-Length). Downloads never carry the API key: result URLs are plain CDN links.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from prefect_lipsync.runware.errors import DownloadError
from prefect_lipsync.runware.models import Sync3Result
from prefect_lipsync.runware.transport import backoff_delay

log = logging.getLogger("prefect_lipsync.runware")

_FRESH_STATUSES = frozenset({404, 422, 502})


@dataclass(frozen=True)
class DownloadPolicy:
    attempts: int = 8
    initial_delay: float = 0.5
    max_delay: float = 5.0
    total_time: float = 300.0
    #: 404/422 are retried only this long after the first try (the URL is "not there yet").
    fresh_window: float = 10.0
    chunk_bytes: int = 1 << 20


class _Retryable(DownloadError):
    """A download failure worth another try."""


def _atomic_target(dest: Path) -> tuple[int, str]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")


@contextlib.contextmanager
def _temp_beside(dest: Path) -> Iterator[tuple[int, str]]:
    """A temp file in dest's directory, removed unless it was renamed into place."""
    fd, tmp = _atomic_target(dest)
    try:
        yield fd, tmp
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomic(dest: Path, data: bytes) -> Path:
    with _temp_beside(dest) as (fd, tmp):
        os.write(fd, data)
        os.fsync(fd)
        os.replace(tmp, dest)
    return dest


def _decode_inline(result: Sync3Result) -> bytes | None:
    raw = result.video_base64_data
    if raw is None and result.video_data_uri:
        raw = result.video_data_uri.split(",", 1)[-1]
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DownloadError("result carries invalid base64 video data", task_uuid=result.task_uuid) from exc


async def download(
    http: httpx.AsyncClient,
    source: Sync3Result | str,
    dest: str | os.PathLike[str],
    *,
    policy: DownloadPolicy | None = None,
) -> Path:
    """Fetch a result (or URL) into `dest`, atomically; raise DownloadError when it cannot be done."""
    policy = policy or DownloadPolicy()
    target = Path(dest)
    task_uuid = None
    if isinstance(source, Sync3Result):
        task_uuid = source.task_uuid
        inline = _decode_inline(source) if not source.video_url else None
        if inline is not None:
            return write_atomic(target, inline)
        if not source.video_url:
            raise DownloadError("result has no video to download", task_uuid=task_uuid)
        url = source.video_url
    else:
        url = source
    started = time.monotonic()

    def worth_retrying(exc: BaseException) -> bool:
        if not isinstance(exc, _Retryable):
            return False
        if exc.status_code in (404, 422):
            return time.monotonic() - started < policy.fresh_window
        return True

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_time),
        wait=lambda state: backoff_delay(state.attempt_number, policy.initial_delay, policy.max_delay, 0.25),
        retry=retry_if_exception(worth_retrying),
        reraise=True,
        before_sleep=_log_retry,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await _fetch_once(http, url, target, policy.chunk_bytes, task_uuid)
    except _Retryable as exc:
        raise DownloadError(exc.message, task_uuid=task_uuid, status_code=exc.status_code) from None
    raise AssertionError("unreachable")  # pragma: no cover


async def _fetch_once(
    http: httpx.AsyncClient, url: str, target: Path, chunk_bytes: int, task_uuid: str | None
) -> Path:
    shown = _shown(url)
    with _temp_beside(target) as (fd, tmp):
        received = 0
        try:
            async with http.stream("GET", url) as response:
                status = response.status_code
                if status >= 400:
                    what = f"download of {shown} answered HTTP {status}"
                    if status in _FRESH_STATUSES or status in (408, 429) or status >= 500:
                        raise _Retryable(what, status_code=status, task_uuid=task_uuid)
                    raise DownloadError(what, status_code=status, task_uuid=task_uuid)
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                # Content-Length counts the encoded bytes: only comparable when nothing is decoded.
                expected = None if encoded else response.headers.get("content-length")
                chunks = response.aiter_bytes(chunk_bytes) if encoded else response.aiter_raw(chunk_bytes)
                async for chunk in chunks:
                    view = memoryview(chunk)
                    while view:  # os.write may write less than asked (a full disk, a signal)
                        view = view[os.write(fd, view) :]
                    received += len(chunk)
        except httpx.TransportError as exc:
            raise _Retryable(
                f"download of {shown} failed ({type(exc).__name__}) after {received} bytes",
                task_uuid=task_uuid,
            ) from None
        if expected is not None and expected.isdigit() and int(expected) != received:
            raise _Retryable(
                f"download of {shown} was cut short: {received} of {expected} bytes", task_uuid=task_uuid
            )
        os.fsync(fd)
        os.replace(tmp, target)
    return target


def _shown(url: str) -> str:
    """The URL without its query (presigned URLs carry signatures there)."""
    return url.split("?", 1)[0]


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    delay = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning("%s; retry %d in %.1f s", exc, state.attempt_number, delay)
