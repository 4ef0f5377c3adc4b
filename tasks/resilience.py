"""What a busy Prefect API may answer (503/429, a dropped connection) must not cost a paid job.

Prefect's own client already retries a few times; past that, our calls into Prefect (a task or subflow
run, an artifact) are retried with backoff and jitter, and artifacts, which only report, are best-effort
and written in the background: on Prefect's temporary SQLite server one artifact write could wait
through the client's whole backoff (2 + 4 + 8 + 16 + 32 s), and the job or manifest behind it with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

import httpx
from prefect import get_run_logger
from prefect.exceptions import PrefectHTTPStatusError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

T = TypeVar("T")

#: Prefect API failures that must not cost a paid job its delivery.
PREFECT_API_ERRORS: tuple[type[BaseException], ...] = (PrefectHTTPStatusError, httpx.TransportError)
_BUSY = {429, 502, 503, 504}


def _busy(exc: BaseException) -> bool:
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code in _BUSY
    return isinstance(exc, httpx.TransportError)


async def with_api_retries(call: Callable[[], Awaitable[T]], *, attempts: int = 6) -> T:
    """`call()` again, after a growing, jittered pause, while the Prefect API says it is busy."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_busy),
        wait=wait_random_exponential(multiplier=1, max=30),
        stop=stop_after_attempt(attempts),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover


#: Reports being written in the background, when a flow opened `reports_in_background`.
_BACKGROUND: ContextVar[set[asyncio.Task[None]] | None] = ContextVar(
    "lipsync_background_reports", default=None
)
#: How long a flow waits at its end for reports still being written.
REPORTS_DRAIN_TIMEOUT_S = 180.0


async def _publish(call: Callable[[], Awaitable[object]], what: str) -> None:
    try:
        await with_api_retries(call, attempts=3)
    except PREFECT_API_ERRORS as exc:
        get_run_logger().warning(
            "Could not publish %s (the Prefect API failed: %s); the run goes on.", what, exc
        )


async def _publish_in_background(call: Callable[[], Awaitable[object]], what: str) -> None:
    # Nobody awaits this one's outcome: any failure is said here rather than lost.
    try:
        await _publish(call, what)
    except Exception as exc:
        get_run_logger().warning(
            "Could not publish %s (%s: %s); the run goes on.", what, type(exc).__name__, exc
        )


async def best_effort(call: Callable[[], Awaitable[object]], what: str) -> None:
    """An artifact or a report for people: if the Prefect API keeps failing, log it and go on.

    Inside `reports_in_background` it is written in the background (in the caller's run context, so
    it belongs to the same flow or task run) and the caller goes on at once.
    """
    pending = _BACKGROUND.get()
    if pending is None:
        await _publish(call, what)
        return
    writing = asyncio.ensure_future(_publish_in_background(call, what))
    pending.add(writing)
    writing.add_done_callback(pending.discard)


@contextlib.asynccontextmanager
async def reports_in_background(timeout_s: float | None = None) -> AsyncIterator[None]:
    """Reports published by `best_effort` inside are written in the background and waited for at the
    end (up to `timeout_s`). Nested inside another, it defers to the outer one, which waits for all."""
    if _BACKGROUND.get() is not None:
        yield
        return
    pending: set[asyncio.Task[None]] = set()
    token = _BACKGROUND.set(pending)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)
        if pending:
            _, late = await asyncio.wait(set(pending), timeout=timeout_s or REPORTS_DRAIN_TIMEOUT_S)
            for writing in late:
                writing.cancel()
            if late:
                get_run_logger().warning(
                    "%d reports were still being written to the Prefect API when the run ended; left out.",
                    len(late),
                )
