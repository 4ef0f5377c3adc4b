"""The facts of a file the checks compare: streams, duration, size, frame rate (one ffprobe run)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from prefect_lipsync.media.ffmpeg_runner import run_ffprobe_json


@dataclass(frozen=True)
class StreamFacts:
    path: Path
    duration: float
    video_count: int
    audio_count: int
    width: int | None
    height: int | None
    fps: Fraction | None

    @property
    def frame_s(self) -> float:
        """One frame in seconds (1/25 s when the rate is unknown)."""
        return float(1 / self.fps) if self.fps else 0.04


def _fraction(text: Any) -> Fraction | None:
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def probe_streams(path: Path, *, timeout: float = 30.0) -> StreamFacts:
    """Probe `path`; raises MediaError (FFmpegFailed) when ffprobe cannot read it."""
    data = run_ffprobe_json(path, timeout=timeout)
    streams = [s for s in data.get("streams", []) if isinstance(s, dict)]
    # Cover art is a video stream with the attached_pic disposition: not a picture track.
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    fmt = data.get("format") or {}
    duration = _float(fmt.get("duration"))
    if duration is None:
        durations = [d for s in streams if (d := _float(s.get("duration"))) is not None]
        duration = max(durations, default=0.0)
    first = videos[0] if videos else {}
    return StreamFacts(
        path=path,
        duration=duration,
        video_count=len(videos),
        audio_count=len(audios),
        width=first.get("width"),
        height=first.get("height"),
        fps=_fraction(first.get("r_frame_rate")) if first else None,
    )
