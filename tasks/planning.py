"""The planning task: read, probe and plan a manifest once (the core's `plan_run`), as one task run."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_lipsync.pipeline import RunPlan, RunSettings, plan_run


@task(
    name="plan-segments",
    description="Read the manifest, probe its media (cached) and plan one checked sync-3 request per language.",
    cache_policy=NO_CACHE,  # planning is cheap and must see the files as they are now
)
async def plan_segments(
    manifest: str, settings: RunSettings, languages: Sequence[str] | None = None
) -> RunPlan:
    """Plan every language (or only `languages`); raise ManifestError naming every problem at once."""
    return await anyio.to_thread.run_sync(lambda: plan_run(manifest, settings, languages=languages))
