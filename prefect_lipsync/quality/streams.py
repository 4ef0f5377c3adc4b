"""The facts of a file the checks compare: streams, duration, size, frame rate (one ffprobe run).

The size is the picture as people see it: a phone video stored 1920x1080 with a 90 degree display
matrix is 1080x1920 here, as ffmpeg decodes it (it turns frames by the matrix) and as players show it.

A process remembers the facts of the files it probed, by file version (path, size, mtime, inode): a
job's source is asked for by the plan's check, the preflight, the checks and the pictures, and every
job of a batch shares it; one ffprobe run each was five per job (26 runs of one source for 5
manifests), about 75 ms of CPU each.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from prefect_lipsync.media.cache import FileKey
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.ffmpeg_runner import run_ffprobe_json
from prefect_lipsync.media.frame_clock import FrameClock
from prefect_lipsync.media.probe import display_rotation, media_info_from_ffprobe, needs_frame_times, timed


@dataclass(frozen=True)
class StreamFacts:
    path: Path
    duration: float
    video_count: int
    audio_count: int
    width: int | None  # as shown (the display matrix applied)
    height: int | None
    fps: Fraction | None
    rotation: int = 0  # degrees the display matrix turns the stored picture
    clock: FrameClock | None = None  # frame times from timestamps when the rate varies; None: k / fps

    @property
    def size_text(self) -> str:
        """'1080x1920', with the rotation when the stored picture is turned for display."""
        turned = f" (stored turned by {self.rotation} degrees)" if self.rotation else ""
        return f"{self.width}x{self.height}{turned}"

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


#: File versions whose facts a process keeps (a batch's sources and the outputs being checked).
REMEMBERED_FILES = 256
_remembered: OrderedDict[FileKey, StreamFacts] = OrderedDict()
_remembered_lock = threading.Lock()


def probe_streams(path: Path, *, timeout: float = 30.0) -> StreamFacts:
    """Probe `path` (or remember it, when this version of the file was probed before); raises
    MediaError (FFmpegFailed) when ffprobe cannot read it."""
    key = FileKey.of(path)
    if key is not None:
        with _remembered_lock:
            hit = _remembered.get(key)
            if hit is not None:
                _remembered.move_to_end(key)
                return hit if hit.path == path else dataclasses.replace(hit, path=path)
    facts = _probe_streams(path, timeout)
    if key is not None and FileKey.of(path) == key:  # unchanged while ffprobe read it
        with _remembered_lock:
            _remembered[key] = facts
            while len(_remembered) > REMEMBERED_FILES:
                _remembered.popitem(last=False)
    return facts


def _probe_streams(path: Path, timeout: float) -> StreamFacts:
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
    rotation = display_rotation(first)[0] if first else 0
    clock = _variable_clock(path, data, timeout) if first else None
    width, height = first.get("width"), first.get("height")
    if rotation % 180 == 90:
        width, height = height, width
    return StreamFacts(
        path=path,
        duration=duration,
        video_count=len(videos),
        audio_count=len(audios),
        width=width,
        height=height,
        fps=_fraction(first.get("r_frame_rate")) if first else None,
        rotation=rotation,
        clock=clock,
    )


def _variable_clock(path: Path, data: dict[str, Any], timeout: float) -> FrameClock | None:
    """The frame times of a video whose rate varies (read from its timestamps), else None."""
    try:
        video = media_info_from_ffprobe(str(path), data).video
        if video is None or not needs_frame_times(video):
            return None
        video = timed(str(path), data, video, timeout)
    except MediaError:
        return None  # the timestamps could not be read: frames are taken at k / fps
    return video.clock() if video.frame_times is not None else None
