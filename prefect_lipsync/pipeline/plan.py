"""A run's plan: the manifest read once, its media probed once, every job planned with the run's settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from prefect_lipsync.manifest import (
    LoadedManifest,
    ManifestError,
    ManifestProblem,
    Plan,
    PlannedJob,
    load_and_plan,
    read_manifest,
    read_manifest_data,
)
from prefect_lipsync.manifest.output_names import output_stem
from prefect_lipsync.manifest.pipeline import ProbeFn
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.pipeline.settings import RunSettings


class BudgetExceeded(ValueError):
    """The run's estimated cost is over its budget: refused before anything is uploaded or paid."""


class RunPlan(BaseModel):
    """One manifest's jobs and what the runner needs around them: the name, the source, the estimate."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    manifest: str
    name: str
    video_ref: str
    video_fps: Fraction | None
    video_duration: float
    plan: Plan

    @property
    def jobs(self) -> list[PlannedJob]:
        return self.plan.jobs

    @property
    def estimated_cost_usd(self) -> float:
        return self.plan.estimated_cost_usd


def _only(loaded: LoadedManifest, languages: Sequence[str]) -> LoadedManifest:
    """The manifest narrowed to `languages`, so nothing else is probed, planned or priced."""
    unknown = [code for code in languages if code not in loaded.manifest.languages]
    if unknown:
        raise ManifestError(
            [
                ManifestProblem(
                    file=loaded.file,
                    field="languages",
                    message=f"the manifest has no language {', '.join(unknown)}",
                    fix=f"choose among {', '.join(sorted(loaded.manifest.languages))}",
                )
            ]
        )
    keep = set(languages)
    manifest = loaded.manifest.model_copy(
        update={"languages": {k: v for k, v in loaded.manifest.languages.items() if k in keep}}
    )
    return dataclasses.replace(
        loaded,
        manifest=manifest,
        lines={k: v for k, v in loaded.lines.items() if k in keep},
        broken={k for k in loaded.broken if k in keep},
    )


#: How a manifest handed over as a mapping is named in errors and in the plan.
MAPPING_LABEL = "<mapping>"


def plan_run(
    manifest: str | Path | Mapping[str, Any],
    settings: RunSettings,
    *,
    languages: Sequence[str] | None = None,
    base_dir: str | Path | None = None,
    probe_fn: ProbeFn | None = None,
    audio_ops_dir: str | Path | None = None,
) -> RunPlan:
    """Read, probe and plan `manifest` once; refuse it (ManifestError, BudgetExceeded) before any cost.

    `manifest` is a file, or the same document as a mapping (relative media paths resolved against
    `base_dir`, default the working directory).

    Audio operations are rendered under `audio_ops_dir` (default: the cache folder), never beside
    the inputs, which may sit on a read-only share.
    """
    if isinstance(manifest, Mapping):
        loaded, problems = read_manifest_data(manifest, file=MAPPING_LABEL, base_dir=base_dir)
        manifest = MAPPING_LABEL
    else:
        loaded, problems = read_manifest(manifest)
    if loaded is None:
        raise ManifestError(problems)
    if languages:
        loaded = _only(loaded, languages)
    video_ref = loaded.resolve(loaded.manifest.video)
    probed: dict[str, MediaInfo] = {}

    def probe_and_keep(refs: Sequence[str]) -> Mapping[str, MediaInfo | MediaError]:
        from prefect_lipsync.manifest.pipeline import default_probe_fn

        outcomes = dict((probe_fn or default_probe_fn())(refs))
        probed.update({ref: o for ref, o in outcomes.items() if isinstance(o, MediaInfo)})
        return outcomes

    plan = load_and_plan(
        loaded,
        probe_fn=probe_and_keep,
        price_per_second=settings.price_per_second_usd,
        number_results=settings.number_results,
        audio_ops_dir=audio_ops_dir,
        request_options=settings.request_options(),
    )
    budget = settings.budget_usd_per_run
    if budget is not None and plan.estimated_cost_usd > budget:
        raise BudgetExceeded(
            f"{manifest}: the estimated cost ${plan.estimated_cost_usd:.2f} exceeds the budget of "
            f"${budget:.2f} per run; nothing was uploaded or submitted. Raise budget_usd_per_run or plan "
            "fewer languages."
        )
    video = probed[video_ref]
    name = output_stem(video_ref, loaded.manifest.name)
    for job in plan.jobs:
        job.run_name = name
    return RunPlan(
        manifest=str(manifest),
        name=name,
        video_ref=video_ref,
        video_fps=video.video.fps if video.video else None,
        video_duration=video.duration,
        plan=plan,
    )
