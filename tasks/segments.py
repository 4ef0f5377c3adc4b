"""The planning task: a script manifest (a file, or a mapping from an upstream step) -> one checked
sync-3 request per language, its `segments` built from the lines and snapped to the video's frames."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.pipeline.plan import plan_run
from prefect_lipsync.pipeline.settings import RunSettings
from prefect_lipsync.tasks.dispatch import dispatch_to

_NAME = "build-segments"
_DESCRIPTION = "Build each language's sync-3 request and segments from a script manifest, every rule checked."


def _build(
    manifest: str | Path | Mapping[str, Any],
    languages: Sequence[str] | None,
    settings: RunSettings | None,
    base_dir: str | Path | None,
) -> list[PlannedJob]:
    source = manifest if isinstance(manifest, Mapping) else str(manifest)
    plan = plan_run(source, settings or RunSettings(), languages=languages, base_dir=base_dir)
    return plan.jobs


@task(name=_NAME, description=_DESCRIPTION, cache_policy=NO_CACHE)  # must see the files as they are now
async def abuild_segments(
    manifest: str | Path | dict[str, Any],
    *,
    languages: list[str] | None = None,
    settings: RunSettings | None = None,
    base_dir: str | None = None,
) -> list[PlannedJob]:
    """Plan a manifest: one `PlannedJob` per language (async twin of `build_segments`).

    Args:
        manifest: A manifest file (YAML or JSON), or the same document as a mapping handed over by an
            upstream step.
        languages: Only these languages (all when empty).
        settings: Run settings or a `LipsyncSettings` block (price, budget, number of results, ...).
        base_dir: Where relative media paths of a mapping are resolved (default: the working directory).

    Returns:
        One `PlannedJob` per language: its sync-3 request, warnings, dropped lines and audio work.

    Raises:
        ManifestError: Every problem of the manifest at once, each with its file, line and field.
        BudgetExceeded: The estimated cost is over `settings.budget_usd_per_run`.

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import abuild_segments

        @flow
        async def plan(manifest: dict) -> int:
            return len(await abuild_segments(manifest, base_dir="/srv/media"))
        ```
    """
    return await anyio.to_thread.run_sync(lambda: _build(manifest, languages, settings, base_dir))


@task(name=_NAME, description=_DESCRIPTION, cache_policy=NO_CACHE)
@dispatch_to(abuild_segments)
def build_segments(
    manifest: str | Path | dict[str, Any],
    *,
    languages: list[str] | None = None,
    settings: RunSettings | None = None,
    base_dir: str | None = None,
) -> list[PlannedJob]:
    """Plan a manifest: one `PlannedJob` per language, the same checks and errors as `prefect-lipsync plan`.

    Args:
        manifest: A manifest file (YAML or JSON), or the same document as a mapping handed over by an
            upstream step.
        languages: Only these languages (all when empty).
        settings: Run settings or a `LipsyncSettings` block (price, budget, number of results, ...).
        base_dir: Where relative media paths of a mapping are resolved (default: the working directory).

    Returns:
        One `PlannedJob` per language: its sync-3 request, warnings, dropped lines and audio work.

    Raises:
        ManifestError: Every problem of the manifest at once, each with its file, line and field.
        BudgetExceeded: The estimated cost is over `settings.budget_usd_per_run`.

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import build_segments

        @flow
        def plan(manifest: str) -> list[str]:
            return [job.language for job in build_segments(manifest)]
        ```
    """
    return _build(manifest, languages, settings, base_dir)
