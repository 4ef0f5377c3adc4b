"""Seeded fault decisions: one random stream per kind of fault, so that turning one fault on does
not change which requests another fault hits (runs with the same seed are reproducible)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Literal

from prefect_lipsync.emulator.config import EmulatorConfig

FailureShape = Literal["errors", "data"]

_HTML_BODY = (
    "<html><head><title>{status}</title></head><body><center><h1>{status} {reason}</h1></center>"
    "<hr><center>nginx</center></body></html>"
)
_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_CODES = {
    429: "rateLimitExceeded",
    500: "internalServerError",
    503: "serviceUnavailable",
    504: "timeoutGateway",
}


@dataclass(frozen=True)
class HttpFault:
    """An answer a gateway in front of the service would give."""

    status: int
    retry_after: int | None
    html: bool

    @property
    def code(self) -> str:
        return _CODES.get(self.status, "serverError")

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status, "Error")

    def html_body(self) -> str:
        return _HTML_BODY.format(status=self.status, reason=self.reason)


class Faults:
    """Which request gets which fault, drawn from streams seeded by the config's seed."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        seed = self.config.seed
        self._drop = random.Random(f"{seed}/drop")
        self._http = random.Random(f"{seed}/http")
        self._lose = random.Random(f"{seed}/lose")
        self._task = random.Random(f"{seed}/task")
        self._slow = random.Random(f"{seed}/slow")
        self._download = random.Random(f"{seed}/download")
        self._nsfw = random.Random(f"{seed}/nsfw")
        self._seeds = random.Random(f"{seed}/seeds")
        self._quirks = random.Random(f"{seed}/quirks")
        self._window_start = 0.0
        self._window_count = 0

    def drop(self) -> bool:
        return self._hit(self._drop, self.config.drop_rate)

    def http_error(self) -> HttpFault | None:
        if not self._hit(self._http, self.config.http_error_rate):
            return None
        status = self._http.choice((429, 500, 503, 504))
        retry_after = self._http.choice((None, 1)) if status in (429, 503) else None
        html = status >= 500 and self._http.random() < 0.5
        return HttpFault(status, retry_after, html)

    def lose_submit(self) -> Literal["drop", "5xx"] | None:
        if not self._hit(self._lose, self.config.lose_submit_rate):
            return None
        return "drop" if self._lose.random() < 0.5 else "5xx"

    def task_error(self) -> FailureShape | None:
        """A transient task failure, and which of the service's two failure shapes reports it."""
        if not self._hit(self._task, self.config.task_error_rate):
            return None
        return "errors" if self._task.random() < 0.5 else "data"

    def slow(self) -> bool:
        return self._hit(self._slow, self.config.slow_rate)

    def download_error(self) -> int | None:
        if not self._hit(self._download, self.config.download_error_rate):
            return None
        return self._download.choice((422, 502))

    def empty_ack(self) -> bool:
        return self._hit(self._quirks, self.config.empty_ack_rate)

    def statusless_success(self) -> bool:
        return self._hit(self._quirks, self.config.statusless_success_rate)

    def nsfw(self) -> bool:
        return self._hit(self._nsfw, self.config.nsfw_rate)

    def result_seed(self) -> int:
        return self._seeds.randrange(1, 2**31)

    def rate_limited(self, now: float | None = None) -> float | None:
        """Seconds to wait when the per-second limit is used up, else None (and count the POST)."""
        limit = self.config.rate_limit_per_second
        if limit is None:
            return None
        now = time.monotonic() if now is None else now
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        if self._window_count >= limit:
            return max(1.0 - (now - self._window_start), 0.01)
        self._window_count += 1
        return None

    @staticmethod
    def _hit(rng: random.Random, rate: float) -> bool:
        # Always draw, so the stream's position depends only on how many requests came.
        return rng.random() < rate
