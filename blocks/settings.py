"""The settings block: the non-secret defaults a localization team shares."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from prefect_lipsync.pipeline.settings import RunSettings


class LipsyncSettings(Block, RunSettings):
    """Shared, non-secret defaults for sync-3 lip-sync runs: output, sync mode, safety, spend and quality.

    A flow given a settings block uses these values wherever a run does not set its own. The fields
    are those of the core's `RunSettings` (one definition), plus what only Prefect has.

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

    global_concurrency_limit: str | None = Field(
        default=None,
        description="Name of a Prefect global concurrency limit that caps jobs in flight across all workers.",
    )

    def run_settings(self) -> RunSettings:
        """The core's settings value of these defaults (what the planner and the runner read)."""
        return RunSettings.model_validate(self.model_dump(include=set(RunSettings.model_fields)))
