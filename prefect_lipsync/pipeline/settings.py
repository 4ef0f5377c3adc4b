"""The one settings value of a run: what the planner, the runner and the checks read."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from prefect_lipsync.manifest.plan_models import DEFAULT_PRICE_PER_SECOND
from prefect_lipsync.quality.models import QualityThresholds
from prefect_lipsync.runware.client import DEFAULT_JOB_TIMEOUT

OutputFormat = Literal["MP4", "WEBM", "MOV"]
_EXTENSIONS: dict[str, str] = {"MP4": "mp4", "WEBM": "webm", "MOV": "mov"}


class RunSettings(BaseModel):
    """Shared, non-secret defaults of sync-3 runs: output, safety, spend, retries and quality."""

    output_format: OutputFormat = Field(default="MP4", description="Container of the outputs.")
    output_quality: int = Field(
        default=95, ge=20, le=99, description="Compression quality of the outputs, 20-99."
    )
    sync_mode: Literal["bounce", "cut_off", "silence", "remap"] = Field(
        default="cut_off",
        description="Not applied yet: each manifest's defaults.sync_mode (or a language's sync_mode) decides.",
    )
    safety_mode: Literal["none", "fast", "full"] = Field(
        default="fast", description="Content safety checking of outputs: none, fast (key frames) or full."
    )
    number_results: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Variations made per job (each billed); the best one is delivered, the others kept as alternates.",
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
    job_timeout_s: float = Field(
        default=DEFAULT_JOB_TIMEOUT,
        gt=0,
        description="Seconds one job may take from its first submit to its last result, resubmits included.",
    )
    price_per_second_usd: float = Field(
        default=DEFAULT_PRICE_PER_SECOND,
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
    deliver_to_storage: bool = Field(
        default=False,
        description=(
            "With an s3:// out_dir: the service PUTs each result straight into the bucket (sync-3's uploadEndpoint, "
            "a presigned PUT) under OUT/.staging/; it is checked from there and copied to its final key only if "
            "it passed. One result per job (number_results 1)."
        ),
    )

    @model_validator(mode="after")
    def _one_result_per_upload_endpoint(self) -> RunSettings:
        if self.deliver_to_storage and self.number_results != 1:
            raise ValueError(
                "deliver_to_storage gives the service one upload URL per job: set number_results to 1, "
                "or turn deliver_to_storage off"
            )
        return self

    @property
    def output_extension(self) -> str:
        return _EXTENSIONS[self.output_format]

    def request_options(self) -> dict[str, Any]:
        """The wire fields these settings set on every planned sync-3 request."""
        options: dict[str, Any] = {
            "outputFormat": self.output_format,
            "outputQuality": self.output_quality,
            "ttl": self.ttl_s,
            "includeCost": True,  # the run's cost summary needs it
        }
        if self.safety_mode != "none":
            options["safety"] = {"checkContent": True, "mode": self.safety_mode}
        return options
