"""What the checks need from a sync-3 wire payload (camelCase JSON): segments, media, safety.

Read leniently from a plain dict, so a plan written by any version of the planner can be checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LocalMedia = Mapping[str, Path]


@dataclass(frozen=True)
class PlannedSegment:
    """One stretch of the video where submitted audio plays (a segment, or the whole-track dub)."""

    index: int
    start: float
    end: float
    audio_ref: str
    audio_start: float = 0.0
    audio_end: float | None = None  # None: to the end of the audio file

    @property
    def duration(self) -> float:
        return self.end - self.start

    def audio_length(self) -> float:
        """Seconds of submitted audio that play in this segment (never more than the segment)."""
        if self.audio_end is None:
            return self.duration
        return max(0.0, min(self.audio_end - self.audio_start, self.duration))

    @property
    def label(self) -> str:
        return f"segment {self.index + 1} ({self.start:.2f}-{self.end:.2f} s)"


def _number(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    return default


def planned_segments(payload: Mapping[str, Any], video_duration: float) -> list[PlannedSegment]:
    """The segments of `payload`, or one segment over the whole video for `inputs.audio`; [] for TTS."""
    settings = payload.get("settings") or {}
    raw_segments = settings.get("segments") if isinstance(settings, Mapping) else None
    if isinstance(raw_segments, list) and raw_segments:
        segments: list[PlannedSegment] = []
        for index, raw in enumerate(raw_segments):
            if not isinstance(raw, Mapping) or not isinstance(raw.get("audio"), str):
                continue
            start = _number(raw.get("startTime"), 0.0) or 0.0
            end = _number(raw.get("endTime"), video_duration) or video_duration
            segments.append(
                PlannedSegment(
                    index=index,
                    start=start,
                    end=min(end, video_duration) if video_duration > 0 else end,
                    audio_ref=raw["audio"],
                    audio_start=_number(raw.get("audioStartTime"), 0.0) or 0.0,
                    audio_end=_number(raw.get("audioEndTime")),
                )
            )
        return segments
    inputs = payload.get("inputs") or {}
    audio = inputs.get("audio") if isinstance(inputs, Mapping) else None
    if isinstance(audio, str):
        return [PlannedSegment(index=0, start=0.0, end=video_duration, audio_ref=audio)]
    return []


def video_ref(payload: Mapping[str, Any]) -> str | None:
    inputs = payload.get("inputs") or {}
    video = inputs.get("video") if isinstance(inputs, Mapping) else None
    return video if isinstance(video, str) else None


def safety_mode(payload: Mapping[str, Any]) -> str:
    """The content check the service was asked for: none, fast or full (checkContent alone means fast)."""
    safety = payload.get("safety") or {}
    if not isinstance(safety, Mapping):
        return "none"
    mode = safety.get("mode")
    if isinstance(mode, str):
        return mode
    return "fast" if safety.get("checkContent") is True else "none"


def resolve_media(ref: str, local_media: LocalMedia | None = None) -> Path | None:
    """The local file behind a media reference: from `local_media`, a file:// URI, or a plain path.

    Returns None for a URL or media UUID with no local copy.
    """
    if local_media and ref in local_media:
        return Path(local_media[ref])
    parts = urlsplit(ref)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" and ("/" in ref or Path(ref).suffix):
        return Path(ref)
    return None
