"""Helpers for the manifest tests: MediaInfo without files, and manifests planned from dicts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from prefect_lipsync.manifest import Manifest, Plan, plan_manifest, prepare
from prefect_lipsync.media.info import AudioStream, MediaInfo, VideoStream

BASE = "/manifests"  # planning is pure: these paths never exist


def video_info(
    path: str, *, duration: float = 10.0, fps: str = "25", size: tuple[int, int] = (160, 90)
) -> MediaInfo:
    rate = Fraction(fps)
    return MediaInfo(
        path=path,
        duration=duration,
        video=VideoStream(
            index=0,
            codec="h264",
            width=size[0],
            height=size[1],
            fps=rate,
            frame_count=round(Fraction(repr(duration)) * rate),
            duration=duration,
        ),
        audio=[AudioStream(index=1, codec="aac", sample_rate=48000, channels=1, duration=duration)],
    )


def audio_info(path: str, duration: float) -> MediaInfo:
    return MediaInfo(
        path=path,
        duration=duration,
        audio=[AudioStream(index=0, codec="pcm_s16le", sample_rate=48000, channels=1, duration=duration)],
    )


def plan_data(
    data: Mapping[str, Any],
    *,
    audio: Mapping[str, float] | None = None,
    video: MediaInfo | None = None,
    base: str = BASE,
    **kwargs: Any,
) -> Plan:
    """Plan manifest `data` (paths relative to `base`) with synthetic probes: audio {rel path: seconds}."""
    loaded = prepare(Manifest.model_validate(data), base_dir=base)
    media: dict[str, MediaInfo] = {}
    video_ref = loaded.resolve(data["video"])
    media[video_ref] = video or video_info(video_ref)
    for rel, seconds in (audio or {}).items():
        ref = loaded.resolve(rel)
        media[ref] = audio_info(ref, seconds)
    kwargs.setdefault("audio_ops_dir", os.path.join(base, "ops"))
    return plan_manifest(loaded, media, **kwargs)


def segments(plan: Plan, language: str | None = None) -> list[dict[str, Any]]:
    job = plan.jobs[0] if language is None else next(j for j in plan.jobs if j.language == language)
    wire = job.request.to_wire()
    result: list[dict[str, Any]] = wire["settings"]["segments"]
    return result


def uri(rel: str, base: str = BASE) -> str:
    return Path(os.path.join(base, rel)).as_uri()
