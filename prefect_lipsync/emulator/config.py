"""Every knob of the emulator, in one frozen dataclass shared by the command and `run_emulator`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

DEFAULT_PRICE_PER_SECOND = 0.13
DEFAULT_TTL_S = 3600

WebhookShape = Literal["flat", "data"]


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves. Rates are shares in [0, 1], drawn from `random.Random(seed)`."""

    latency: float = 2.0
    """Seconds from acceptance until a videoInference task is finished."""
    seed: int = 0
    http_error_rate: float = 0.0
    """Share of /v1 POSTs answered 429/500/503/504 (some with Retry-After, some with an HTML body)."""
    drop_rate: float = 0.0
    """Share of /v1 POSTs whose connection is dropped without an answer."""
    lose_submit_rate: float = 0.0
    """Share of POSTs with videoInference tasks that are accepted but whose answer is lost."""
    task_error_rate: float = 0.0
    """Share of accepted tasks that fail with a transient `timeoutProvider` error."""
    slow_rate: float = 0.0
    """Share of /v1 POSTs answered only after `slow_seconds`."""
    slow_seconds: float = 1.0
    download_error_rate: float = 0.0
    empty_ack_rate: float = 0.0
    """Share of accepted tasks whose ACK has an empty `data` (the service does this sometimes)."""
    statusless_success_rate: float = 0.0
    """Share of tasks whose finished items carry no `status` (a videoURL says it is done)."""
    """Share of results whose first download answers 422 or 502 (as the service does right after success)."""
    api_key: str | None = None
    """Exactly this key is accepted; None accepts any non-empty key."""
    price_per_second: float = DEFAULT_PRICE_PER_SECOND
    credits_usd: float | None = None
    """Account balance; a submit whose cost would exceed what is left answers 402. None is unlimited."""
    nsfw_when_text_contains: str | None = None
    """Results are flagged NSFW when the speech text contains this (case-insensitive)."""
    nsfw_rate: float = 0.0
    nsfw_task_uuids: frozenset[str] = field(default_factory=frozenset)
    storage_dir: Path | None = None
    """Where uploads and outputs live; None uses a temporary directory removed on shutdown."""
    ttl: int = DEFAULT_TTL_S
    """Seconds a result URL lives when the request gives no `ttl`."""
    reject_batch_polls: bool = False
    """Answer 400 to a POST holding more than one getResponse task."""
    rate_limit_per_second: float | None = None
    """At most this many /v1 POSTs per second; more answer 429 with Retry-After."""
    webhook_shape: WebhookShape = "flat"
    """Webhook body: the flat result item, or `{"data": [item]}`."""
    webhook_retries: int = 5
    fetch_timeout: float = 30.0
    """Timeout (seconds) for fetching a media URL and for webhook / uploadEndpoint calls."""
    max_parallel_fetches: int = 8
    """Media URLs fetched at once, in the background, after the task was acknowledged."""
    fetch_memory_s: float = 600.0
    """Seconds a fetched URL's file, or its failure, is reused before the URL is fetched again."""
    ws_max_message_bytes: int = 512 * 1024 * 1024
    """Largest WebSocket message accepted (a mediaStorage upload of a video is one message)."""
    render_timeout: float = 300.0
    max_parallel_renders: int = 2
    variation_audio_offsets: tuple[float, ...] = ()
    """Seconds the audio of each variation of a numberResults > 1 task is moved against the picture
    (positive: later), by result index; a result past the tuple's end gets 0. Makes the variations
    differ, as a model's do, so that choosing the best of N can be tested. Empty: all alike."""

    def __post_init__(self) -> None:
        for name in (
            "http_error_rate",
            "drop_rate",
            "lose_submit_rate",
            "task_error_rate",
            "slow_rate",
            "download_error_rate",
            "empty_ack_rate",
            "statusless_success_rate",
            "nsfw_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.latency < 0:
            raise ValueError(f"latency must not be negative, got {self.latency}")
        if self.max_parallel_fetches < 1:
            raise ValueError(f"max_parallel_fetches must be at least 1, got {self.max_parallel_fetches}")
        if self.ttl < 1:
            raise ValueError(f"ttl must be at least 1 second, got {self.ttl}")
        if any(abs(v) > 10.0 for v in self.variation_audio_offsets):
            raise ValueError(
                f"variation_audio_offsets must be within +-10 s, got {list(self.variation_audio_offsets)}"
            )
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty (use None to accept any key)")

    @classmethod
    def from_options(cls, **options: Any) -> EmulatorConfig:
        """Build from keyword options, refusing unknown names (a typo must not be silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown emulator option(s): {', '.join(unknown)}")
        if "nsfw_task_uuids" in options:
            options["nsfw_task_uuids"] = frozenset(options["nsfw_task_uuids"])
        if "variation_audio_offsets" in options:
            options["variation_audio_offsets"] = tuple(float(v) for v in options["variation_audio_offsets"])
        if options.get("storage_dir") is not None:
            options["storage_dir"] = Path(options["storage_dir"])
        return cls(**options)

    def __repr__(self) -> str:
        # The key never shows in logs or reprs.
        shown = ", ".join(
            f"{f.name}={'***' if f.name == 'api_key' and self.api_key else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"EmulatorConfig({shown})"
