"""The settings block: the non-secret defaults a localization team shares."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field

from prefect_lipsync.quality.models import QualityThresholds


class LipsyncSettings(Block):
    """Shared, non-secret defaults for sync-3 lip-sync runs: output, sync mode, safety, spend and quality.

    A flow given a settings block uses these values wherever a run does not set its own.

    Examples:
        Load the team's defaults in a flow:
        ```python
        from prefect_lipsync.blocks import LipsyncSettings

        settings = LipsyncSettings.load("BLOCK_NAME")
        print(settings.output_format, settings.budget_usd_per_run)
        ```
    """

    _block_type_name = "Lipsync Settings"
    _block_type_slug = "lipsync-settings"
    _logo_url = None
    _documentation_url = "https://runware.ai/docs/models/sync-3"  # type: ignore[assignment]

    model: Literal["sync:3@0"] = Field(default="sync:3@0", description="The sync-3 model id sent to Runware.")
    output_format: Literal["MP4", "WEBM", "MOV"] = Field(
        default="MP4", description="Container of the outputs."
    )
    output_quality: int = Field(
        default=95, ge=20, le=99, description="Compression quality of the outputs, 20-99."
    )
    sync_mode: Literal["bounce", "cut_off", "silence", "remap"] = Field(
        default="cut_off", description="What the service does when audio and video lengths differ."
    )
    safety_mode: Literal["none", "fast", "full"] = Field(
        default="fast", description="Content safety checking of outputs: none, fast (key frames) or full."
    )
    ttl_s: int = Field(default=3600, ge=60, description="Seconds a result URL stays valid (at least 60).")
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Jobs submitted and waited on at once per run."
    )
    max_task_retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Times a job the provider failed transiently is resubmitted; each resubmit is a new paid task.",
    )
    global_concurrency_limit: str | None = Field(
        default=None,
        description="Name of a Prefect global concurrency limit that caps jobs in flight across all workers.",
    )
    price_per_second_usd: float = Field(
        default=0.13,
        ge=0,
        description="Price per second of output used for estimates (Runware publishes none; sync.'s own API lists about 0.13).",
    )
    budget_usd_per_run: float | None = Field(
        default=None,
        ge=0,
        description="A run whose estimated cost exceeds this is refused before anything is paid.",
    )
    quality: QualityThresholds = Field(
        default_factory=QualityThresholds, description="Thresholds of the quality checks on each output."
    )
