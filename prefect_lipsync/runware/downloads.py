"""Result downloads: streamed to a temp file next to the target, renamed into place when complete.

A result URL may answer 404/422/502 for a few seconds right after the task succeeded, so those
are retried for a short window; transient failures (408, 429, 5xx, resets, a short body, an
attempt past its deadline) are retried with backoff. A download is complete only when that is
known: every byte of the Content-Length arrived, or, without one, the file decodes (ffprobe) to
the length the caller says the result has (`expected_duration_s`). Anything else is an error and
nothing appears at the destination. Downloads never carry the API key: result URLs are plain
CDN links.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
from pydantic import ValidationError as PydanticValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from prefect_lipsync.files import atomic_writer, write_bytes_atomic
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.ffmpeg_runner import run_process
from prefect_lipsync.runware.errors import DownloadError, download_failure_is_final
from prefect_lipsync.runware.models import ErrorItem, Sync3Result
from prefect_lipsync.runware.transport import (
    AttemptDeadline,
    attempt_seconds,
    backoff_delay,
    stop_at_deadline,
)

log = logging.getLogger("prefect_lipsync.runware")

_FRESH_STATUSES = frozenset({404, 422, 502})
#: An error answer longer than this is not read for its message.
_ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class DownloadPolicy:
    attempts: int = 8
    initial_delay: float = 0.5
    max_delay: float = 5.0
    total_time: float = 300.0
    #: 404/422 are retried only this long after the first try (the URL is "not there yet").
    fresh_window: float = 10.0
    chunk_bytes: int = 1 << 20
    #: How long one attempt may take, connect to last byte (grows with the Content-Length).
    attempt: AttemptDeadline = field(default_factory=AttemptDeadline)
    #: Without a Content-Length: how far the decoded length may be from `expected_duration_s`.
    duration_tolerance_s: float = 0.25
    #: The ffprobe that measures a download without a Content-Length gets this long.
    probe_timeout_s: float = 60.0


class _Retryable(DownloadError):
    """A download failure worth another try."""


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


def decoded_length_s(path: str | os.PathLike[str], *, timeout: float = 60.0) -> float:
    """Seconds of video that can really be read from `path`: the end of its last video packet.

    A container's header may announce the full length of a file cut short (an mp4 with its index
    first does), so the packets are read, not the header. Raises MediaError when ffprobe cannot
    read the file (or is missing, or runs over `timeout`).
    """
    done = run_process(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
            os.fspath(path),
        ],
        timeout=timeout,
        path=os.fspath(path),
    )
    end = 0.0
    for row in done.stdout.decode("ascii", "replace").splitlines():
        parts = row.strip().strip(",").split(",")
        try:
            pts = float(parts[0])
            length = float(parts[1]) if len(parts) > 1 and parts[1] not in ("", "N/A") else 0.0
        except ValueError:
            continue  # a packet without a timestamp says nothing about the length
        end = max(end, pts + length)
    return end


async def download(
    http: httpx.AsyncClient,
    source: Sync3Result | str,
    dest: str | os.PathLike[str],
    *,
    policy: DownloadPolicy | None = None,
    expected_duration_s: float | None = None,
    deadline: float | None = None,
) -> Path:
    """Fetch a result (or URL) into `dest`, atomically; raise DownloadError when it cannot be done.

    `expected_duration_s`: the length the result should have; it is how a download without a
    Content-Length is known to be complete (without both, such a download is refused).
    `deadline` (a time of the running loop): the job's own; no attempt outlives it.
    """
    policy = policy or DownloadPolicy()
    target = Path(dest)
    task_uuid = None
    if isinstance(source, Sync3Result):
        task_uuid = source.task_uuid
        inline = _decode_inline(source) if not source.video_url else None
        if inline is not None:
            return await asyncio.to_thread(write_bytes_atomic, target, inline)
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
        stop=stop_after_attempt(policy.attempts)
        | stop_after_delay(policy.total_time)
        | stop_at_deadline(deadline),
        wait=lambda state: backoff_delay(state.attempt_number, policy.initial_delay, policy.max_delay, 0.25),
        retry=retry_if_exception(worth_retrying),
        reraise=True,
        before_sleep=_log_retry,
    )
    fetch = _Fetch(http, url, target, policy, task_uuid, expected_duration_s, deadline)
    try:
        async for attempt in retrying:
            with attempt:
                return await fetch.once()
    except _Retryable as exc:
        raise DownloadError(
            exc.message, code=exc.code, task_uuid=task_uuid, status_code=exc.status_code
        ) from None
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Fetch:
    """One download, attempted as often as the policy allows."""

    http: httpx.AsyncClient
    url: str
    target: Path
    policy: DownloadPolicy
    task_uuid: str | None
    expected_duration_s: float | None
    deadline: float | None

    async def once(self) -> Path:
        shown = _shown(self.url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        limit = attempt_seconds(self.policy.attempt.base, self.deadline)
        received = 0
        # The temp file is renamed onto the target only if the block ends without an error.
        with atomic_writer(self.target, suffix=".part") as out:
            try:
                async with asyncio.timeout(limit) as scope:
                    async with self.http.stream("GET", self.url) as response:
                        if response.status_code >= 400:
                            self._fail(response.status_code, shown, await _error_body(response))
                        length = _content_length(response)
                        # The whole transfer gets time by its size, counted from the attempt's start.
                        limit = attempt_seconds(self.policy.attempt.for_size(length), self.deadline)
                        scope.reschedule(started + limit)
                        async for chunk in response.aiter_bytes(self.policy.chunk_bytes):
                            out.write(chunk)
                            received += len(chunk)
                        # Raw bytes as they came (before any content decoding): what Content-Length counts.
                        raw = response.num_bytes_downloaded
            except TimeoutError:
                if not scope.expired():
                    raise
                raise _Retryable(
                    f"download of {shown} did not finish within {limit:.3g} s (the whole attempt)"
                    f" after {received} bytes",
                    task_uuid=self.task_uuid,
                ) from None
            except httpx.TransportError as exc:
                raise _Retryable(
                    f"download of {shown} failed ({type(exc).__name__}) after {received} bytes",
                    task_uuid=self.task_uuid,
                ) from None
            if length is not None:
                if raw != length:
                    raise _Retryable(
                        f"download of {shown} was cut short: {raw} of {length} bytes",
                        task_uuid=self.task_uuid,
                    )
            else:
                await self._check_decodes(out.temp_path, shown, received)
        return self.target

    def _fail(self, status: int, shown: str, said: ErrorItem | None) -> NoReturn:
        """Raise for an error status, with what the server said; retryable unless retrying cannot help."""
        what = f"download of {shown} answered HTTP {status}"
        code = said.code if said is not None else None
        if said is not None and said.message:
            what += f": {said.message}"
        final = download_failure_is_final(code)
        if not final and (status in _FRESH_STATUSES or status in (408, 429) or status >= 500):
            raise _Retryable(what, status_code=status, code=code, task_uuid=self.task_uuid)
        raise DownloadError(what, status_code=status, code=code, task_uuid=self.task_uuid)

    async def _check_decodes(self, path: Path, shown: str, received: int) -> None:
        """Without a Content-Length, complete means: decodes to the expected length."""
        expected = self.expected_duration_s
        if expected is None:
            raise DownloadError(
                f"download of {shown} came without a Content-Length ({received} bytes), so it cannot"
                " be known to be complete; pass expected_duration_s (the result's length) to check it"
                " by decoding",
                task_uuid=self.task_uuid,
            )
        try:
            got = await asyncio.to_thread(decoded_length_s, path, timeout=self.policy.probe_timeout_s)
        except MediaError as exc:
            raise _Retryable(
                f"download of {shown} ({received} bytes, no Content-Length) does not decode: {exc}",
                task_uuid=self.task_uuid,
            ) from None
        if abs(got - expected) > self.policy.duration_tolerance_s:
            raise _Retryable(
                f"download of {shown} ({received} bytes, no Content-Length) decodes to {got:.2f} s,"
                f" not the {expected:.2f} s the result should have: cut short",
                task_uuid=self.task_uuid,
            )


async def _error_body(response: httpx.Response) -> ErrorItem | None:
    """The first error of a JSON error answer (`{"errors": [...]}` or `{"error": {...}}`), read bounded.

    A CDN's HTML page, an empty body or anything else says nothing: None.
    """
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > _ERROR_BODY_BYTES:
            return None
    try:
        parsed = json.loads(bytes(body))
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    errors = parsed.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else parsed.get("error")
    if not isinstance(first, dict):
        return None
    try:
        return ErrorItem.model_validate(first)
    except PydanticValidationError:
        return None


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() and len(value) < 20 else None


def _shown(url: str) -> str:
    """The URL without its query (presigned URLs carry signatures there)."""
    return url.split("?", 1)[0]


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    delay = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning("%s; retry %d in %.1f s", exc, state.attempt_number, delay)
