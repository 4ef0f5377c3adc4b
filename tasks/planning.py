"""Prefect tasks that read a manifest, probe its media and plan the sync-3 requests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from prefect import task
from pydantic import BaseModel, ConfigDict

from prefect_lipsync.manifest import ManifestError, ManifestProblem, Plan, PlannedJob, read_manifest
from prefect_lipsync.manifest import plan_manifest as plan_loaded_manifest
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.hashing import cached_file_sha256
from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.media.probe import probe_many
from prefect_lipsync.runware.models import Sync3Request

if TYPE_CHECKING:
    from prefect_lipsync.blocks.settings import LipsyncSettings

Box = tuple[int, int, int, int]


class RunPlan(BaseModel):
    """A manifest's plan with what the run needs around it: names, the source and its face box."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    manifest: str
    name: str
    video_path: str
    video_fps: Fraction | None
    video_duration: float
    face_box: Box | None
    plan: Plan

    @property
    def jobs(self) -> list[PlannedJob]:
        return self.plan.jobs

    @property
    def estimated_cost_usd(self) -> float:
        return self.plan.estimated_cost_usd


def _load(manifest: str) -> Any:
    loaded, problems = read_manifest(manifest)
    if loaded is None:
        raise ManifestError(problems)
    return loaded


@task(
    name="probe-media", description="Probe every media file a manifest names (cached on path, size, mtime)."
)
async def probe_media(manifest: str) -> dict[str, MediaInfo | MediaError]:
    """Probe the manifest's video and audio files in parallel; failures are returned for the planner to report."""
    loaded = await anyio.to_thread.run_sync(_load, manifest)
    refs = loaded.media_refs()
    return await anyio.to_thread.run_sync(lambda: dict(probe_many(refs, return_errors=True)))


def _apply_settings(job: PlannedJob, settings: LipsyncSettings) -> PlannedJob:
    """The team's output and safety settings on a planned request (validated again)."""
    wire = job.request.to_wire()
    wire.update(
        {
            "outputFormat": settings.output_format,
            "outputQuality": settings.output_quality,
            "ttl": settings.ttl_s,
            "includeCost": True,  # the run's cost summary needs it
        }
    )
    if settings.safety_mode != "none":
        wire["safety"] = {"checkContent": True, "mode": settings.safety_mode}
    ext = {"MP4": "mp4", "WEBM": "webm", "MOV": "mov"}[settings.output_format]
    return job.model_copy(
        update={
            "request": Sync3Request.model_validate(wire),
            "output_name": f"{Path(job.output_name).stem}.{ext}",
        }
    )


@task(
    name="plan-segments",
    description="Turn the manifest and probes into one checked sync-3 request per language.",
)
async def plan_manifest(
    manifest: str,
    probes: dict[str, MediaInfo | MediaError],
    price_per_second: float,
    settings: LipsyncSettings,
    languages: list[str] | None = None,
    work_dir: str | None = None,
) -> RunPlan:
    """Plan every language (or only `languages`); raise ManifestError naming every problem at once."""

    def work() -> RunPlan:
        loaded = _load(manifest)
        media = {ref: p for ref, p in probes.items() if isinstance(p, MediaInfo)}
        errors = {ref: p for ref, p in probes.items() if isinstance(p, MediaError)}
        ops_dir = (
            Path(work_dir) if work_dir else Path(manifest).resolve().parent / ".lipsync-work" / "audio-ops"
        )
        plan = plan_loaded_manifest(
            loaded,
            media,
            media_errors=errors,
            price_per_second=price_per_second,
            hash_fn=cached_file_sha256,
            audio_ops_dir=ops_dir,
        )
        jobs = [_apply_settings(j, settings) for j in plan.jobs if not languages or j.language in languages]
        if languages and not jobs:
            raise ManifestError(
                [
                    ManifestProblem(
                        file=str(manifest),
                        field="languages",
                        message=f"none of the languages {languages} is in the manifest",
                        fix=f"choose among {sorted(j.language for j in plan.jobs)}",
                    )
                ]
            )
        seconds = sum(j.video_duration * j.request.number_results for j in jobs)
        plan = plan.model_copy(
            update={
                "jobs": jobs,
                "estimated_seconds": seconds,
                "estimated_cost_usd": round(seconds * price_per_second, 4),
            }
        )
        video_ref = loaded.resolve(loaded.manifest.video)
        info = media[video_ref]
        boxes = [s.box for s in (loaded.manifest.speakers or {}).values() if s.box]
        face_box = tuple(int(v) for v in boxes[0]) if len(boxes) == 1 else None
        return RunPlan(
            manifest=str(manifest),
            name=loaded.manifest.name or Path(video_ref).stem,  # as the planner names outputs
            video_path=video_ref,
            video_fps=info.video.fps if info.video else None,
            video_duration=info.duration,
            face_box=face_box,  # type: ignore[arg-type]
            plan=plan,
        )

    return await anyio.to_thread.run_sync(work)
