"""What a busy Prefect API may answer (503/429, a dropped connection) must not cost a paid job.

Prefect's own client already retries a few times; past that, our calls into Prefect (a task or subflow
run, an artifact) are retried with backoff and jitter, and artifacts, which only report, are best-effort.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


async def best_effort(call: Callable[[], Awaitable[object]], what: str) -> None:
    """An artifact or a report for people: if the Prefect API keeps failing, log it and go on."""
    try:
        await with_api_retries(call, attempts=3)
    except PREFECT_API_ERRORS as exc:
        get_run_logger().warning(
            "Could not publish %s (the Prefect API failed: %s); the run goes on.", what, exc
        )
