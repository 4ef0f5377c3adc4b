"""A run's plan: the manifest read once, its media probed once, every job planned with the run's settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from prefect_lipsync.manifest import (
    LoadedManifest,
    ManifestError,
    ManifestProblem,
    Plan,
    PlannedJob,
    load_and_plan,
    read_manifest,
)
from prefect_lipsync.manifest.pipeline import ProbeFn
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.pipeline.settings import RunSettings
from prefect_lipsync.runware.models import Sync3Request


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


def _with_settings(job: PlannedJob, settings: RunSettings) -> PlannedJob:
    """The team's output and safety options on a planned request, validated like any request."""
    request = Sync3Request.model_validate({**job.request.to_wire(), **settings.request_options()})
    name = f"{Path(job.output_name).stem}.{settings.output_extension}"
    return job.model_copy(update={"request": request, "output_name": name})


def _run_name(job: PlannedJob, settings: RunSettings) -> str:
    """The run's name as the planner put it in the output names (`<name>.<language>.<ext>`)."""
    return job.output_name.removesuffix(f".{job.language}.{settings.output_extension}")


def plan_run(
    manifest: str | Path,
    settings: RunSettings,
    *,
    languages: Sequence[str] | None = None,
    probe_fn: ProbeFn | None = None,
    audio_ops_dir: str | Path | None = None,
) -> RunPlan:
    """Read, probe and plan `manifest` once; refuse it (ManifestError, BudgetExceeded) before any cost.

    Audio operations are rendered under `audio_ops_dir` (default: the cache folder), never beside
    the inputs, which may sit on a read-only share.
    """
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
        audio_ops_dir=audio_ops_dir,
    )
    boxes = [s.box for s in (loaded.manifest.speakers or {}).values() if s.box]
    face_box = tuple(int(v) for v in boxes[0]) if len(boxes) == 1 else None
    jobs = [_with_settings(job, settings) for job in plan.jobs]
    if face_box is not None:
        jobs = [job if job.face_box else job.model_copy(update={"face_box": face_box}) for job in jobs]
    plan = plan.model_copy(update={"jobs": jobs})
    budget = settings.budget_usd_per_run
    if budget is not None and plan.estimated_cost_usd > budget:
        raise BudgetExceeded(
            f"{manifest}: the estimated cost ${plan.estimated_cost_usd:.2f} exceeds the budget of "
            f"${budget:.2f} per run; nothing was uploaded or submitted. Raise budget_usd_per_run or plan "
            "fewer languages."
        )
    video = probed[video_ref]
    return RunPlan(
        manifest=str(manifest),
        name=_run_name(plan.jobs[0], settings) if plan.jobs else Path(video_ref).stem,
        video_ref=video_ref,
        video_fps=video.video.fps if video.video else None,
        video_duration=video.duration,
        plan=plan,
    )
