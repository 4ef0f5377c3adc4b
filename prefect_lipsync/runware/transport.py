"""The one HTTP exchange with Runware: POST a JSON array of tasks, get an envelope or an error.

Transient failures (408, 429, 5xx, connection trouble, timeouts, non-JSON answers) are retried
with exponential backoff and jitter, honouring `Retry-After`; nothing else is retried, and both
the attempts and the total time are bounded. Retrying is only safe because every paid task
carries a content-derived taskUUID: a repeated submit meets `conflictTaskUUID`, not a new bill.

httpx's timeouts bound each read and write; a server that trickles its answer a byte at a time
stays within them forever, so every attempt also has an overall deadline (`AttemptDeadline`:
connect, write and read together), and a caller may pass its job's own deadline, past which no
attempt runs and none is retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)
from tenacity.stop import stop_base

from prefect_lipsync.runware.errors import (
    AuthError,
    RunwareError,
    ServiceError,
    error_from_item,
    is_transient,
    make_error,
)
from prefect_lipsync.runware.models import Envelope, ErrorItem
from prefect_lipsync.tls import shared_tls_context

log = logging.getLogger("prefect_lipsync.runware")

DEFAULT_BASE_URL = "https://api.runware.ai/v1"
# Connect fast, allow a slow answer (a 50-task submit or a big upload's reply), never hang.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)

Body = bytes | Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True)
class AttemptDeadline:
    """The most one HTTP attempt may take from connect to its last byte, whatever each read does.

    A body of n bytes (sent or received) gets `base + n / min_rate` seconds; a download whose
    length is unknown gets `unknown_size` seconds.
    """

    base: float = 120.0
    #: Bytes per second a transfer is expected to keep up at least (128 KiB/s by default).
    min_rate: float = 128 * 1024
    unknown_size: float = 900.0

    def for_size(self, size: int | None) -> float:
        if size is None:
            return max(self.base, self.unknown_size)
        return self.base + max(0, size) / self.min_rate


class stop_at_deadline(stop_base):  # named like tenacity's own stop conditions
    """tenacity stop: no attempt starts once the caller's deadline (a loop time) has passed."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline


def attempt_seconds(limit: float, deadline: float | None) -> float:
    """The time one attempt may take: its own limit, cut to what is left of the job's deadline."""
    if deadline is None:
        return limit
    return max(0.0, min(limit, deadline - asyncio.get_running_loop().time()))


@dataclass(frozen=True)
class RetryPolicy:
    """How transient HTTP failures are retried (per request)."""

    attempts: int = 6
    initial_delay: float = 0.5
    max_delay: float = 10.0
    jitter: float = 0.5
    total_time: float = 120.0
    #: A server's Retry-After is honoured up to this many seconds.
    max_retry_after: float = 60.0


def coerce_secret(api_key: str | SecretStr | None) -> SecretStr | None:
    if api_key is None or isinstance(api_key, SecretStr):
        return api_key
    return SecretStr(api_key)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, initial: float, maximum: float, jitter: float) -> float:
    """Exponential backoff with additive jitter: initial * 2**(attempt-1) + U(0, jitter), capped."""
    exp = initial * 2.0 ** min(max(attempt - 1, 0), 30)
    return min(exp + random.uniform(0.0, jitter), maximum)


class _WaitBackoffOrRetryAfter:
    """tenacity wait: the larger of the backoff and the server's Retry-After (capped)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._cap = policy.max_retry_after

    def __call__(self, state: RetryCallState) -> float:
        p = self._policy
        backoff = backoff_delay(state.attempt_number, p.initial_delay, p.max_delay, p.jitter)
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            return max(backoff, min(float(retry_after), self._cap))
        return backoff


def error_from_response(response: httpx.Response, tasks_hint: str | None = None) -> RunwareError:
    """The RunwareError for a non-2xx answer (JSON envelope or not)."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    items: list[ErrorItem] = []
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        raw = body.get("errors")
        if raw is None and "error" in body:
            raw = [body["error"]] if isinstance(body["error"], dict) else []
        if isinstance(raw, list):
            items = [ErrorItem.model_validate(e) for e in raw if isinstance(e, dict)]
    if items:
        first = items[0]
        err = error_from_item(first, status=status)
        err.errors = tuple(items)
        err.retry_after = retry_after
        return err
    reason = response.reason_phrase or "error"
    what = f" for {tasks_hint}" if tasks_hint else ""
    return make_error(
        None, f"Runware answered HTTP {status} {reason}{what}", status=status, retry_after=retry_after
    )


class Transport:
    """Owns the httpx client and the key; posts task arrays with bounded retries."""

    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str,
        timeout: httpx.Timeout,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 20,
        attempt_deadline: AttemptDeadline | None = None,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url
        self.retry = retry
        self.attempt_deadline = attempt_deadline or AttemptDeadline()
        self.http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            verify=shared_tls_context(),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": "prefect-lipsync", "Accept": "application/json"},
        )
        self.requests_sent = 0

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    async def aclose(self) -> None:
        await self.http.aclose()

    async def post(
        self,
        tasks: Sequence[dict[str, Any]] | None = None,
        *,
        body: Body | None = None,
        content_length: int | None = None,
        what: str = "tasks",
        retry: bool = True,
        deadline: float | None = None,
    ) -> Envelope:
        """POST `tasks` (or a prepared `body`) and return the envelope; retried while transient.

        `deadline` (a time of the running loop) is the job's own: no attempt outlives it and
        none starts after it.
        """
        if tasks is not None:
            data = json.dumps(list(tasks), separators=(",", ":")).encode()
            body = data
        if body is None:
            raise ValueError("post() needs tasks or a body")
        policy = self.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts if retry else 1)
            | stop_after_delay(policy.total_time)
            | stop_at_deadline(deadline),
            wait=_WaitBackoffOrRetryAfter(policy),
            retry=retry_if_exception(is_transient),
            reraise=True,
            before_sleep=lambda s: _log_retry(s, what),
        )
        async for attempt in retrying:
            with attempt:
                return await self._post_once(body, content_length, what, deadline)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_once(
        self, body: Body, content_length: int | None, what: str, deadline: float | None = None
    ) -> Envelope:
        headers = self._headers()
        content: bytes | AsyncIterator[bytes] = body if isinstance(body, bytes) else body()
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        size = len(body) if isinstance(body, bytes) else content_length
        limit = attempt_seconds(self.attempt_deadline.for_size(size or 0), deadline)
        self.requests_sent += 1
        try:
            async with asyncio.timeout(limit) as scope:
                # The whole answer is read inside the deadline (httpx reads it before returning).
                response = await self.http.post(self.base_url, content=content, headers=headers)
        except TimeoutError:
            if not scope.expired():
                raise
            raise ServiceError(
                f"Runware did not finish answering within {limit:.3g} s (the whole attempt) for {what}"
            ) from None
        except httpx.TimeoutException as exc:
            raise ServiceError(f"Runware did not answer in time ({type(exc).__name__}) for {what}") from None
        except httpx.TransportError as exc:
            raise ServiceError(f"connection to Runware failed ({type(exc).__name__}) for {what}") from None
        if response.status_code >= 400:
            err = error_from_response(response, what)
            if isinstance(err, AuthError):
                err.message += " (check the API key)"
            raise err
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ServiceError(
                f"Runware answered HTTP {response.status_code} with a non-JSON body for {what}",
                status_code=response.status_code,
            ) from None
        if isinstance(payload, list):  # tolerate a bare list of items
            payload = {"data": payload}
        if not isinstance(payload, dict):
            raise ServiceError(f"Runware answered with an unexpected JSON shape for {what}")
        try:
            return Envelope.model_validate(payload)
        except PydanticValidationError:
            raise ServiceError(f"Runware answered with a malformed envelope for {what}") from None


def _log_retry(state: RetryCallState, what: str) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    delay = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning("Runware %s: %s; retry %d in %.1f s", what, exc, state.attempt_number, delay)
