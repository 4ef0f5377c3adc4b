"""What every step of planning shares: the manifest, the probes, the problems found so far, one job's draft.

`PlanContext` answers questions about media (the video's frames, an audio file's length, why a
file cannot be used) and collects problems; `JobDraft` collects what one language's planning
says along the way (warnings, dropped lines, audio ops). Both are plain data: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from prefect_lipsync.files import default_cache_dir
from prefect_lipsync.manifest.errors import ManifestProblem
from prefect_lipsync.manifest.loader import LoadedManifest, PlanLine, is_url
from prefect_lipsync.manifest.plan_models import DroppedLine, PlannedAudioOp
from prefect_lipsync.manifest.schema import LanguageSpec, Manifest
from prefect_lipsync.manifest.timecode import format_seconds
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.info import MediaInfo

HashFn = Callable[[str], str]


def seconds_text(value: Fraction) -> str:
    """A time as people read it in a warning: '3.52 s'."""
    return format_seconds(value, 3) + " s"


def default_audio_ops_dir() -> Path:
    """Where rendered audio ops go unless a plan says otherwise: <cache dir>/audio-ops."""
    return default_cache_dir() / "audio-ops"


def name_hash(path: str) -> str:
    """Stand-in content hash when no hash function is given: stable, but keyed on the name."""
    return hashlib.sha256(f"name:{path}".encode()).hexdigest()


def media_uri(resolved: str) -> str:
    """A resolved reference as the request names it: URLs as they are, local files as file:// URIs."""
    return resolved if is_url(resolved) else Path(resolved).as_uri()


@dataclass(frozen=True)
class VideoFacts:
    """What planning needs of the source video."""

    fps: Fraction | None
    frames: int | None
    width: int
    height: int
    duration: float

    @property
    def end(self) -> Fraction | None:
        if self.fps is None or self.frames is None:
            return None
        return Fraction(self.frames) / self.fps


class _Labelled(Protocol):
    @property
    def ids(self) -> list[str]: ...


@dataclass
class JobDraft:
    """What one language collects while it is planned."""

    code: str
    spec: LanguageSpec
    warnings: list[str] = field(default_factory=list)
    dropped: list[DroppedLine] = field(default_factory=list)
    ops: list[PlannedAudioOp] = field(default_factory=list)
    op_paths: set[str] = field(default_factory=set)

    def drop(self, slot_or_line: _Labelled | PlanLine, reason: str) -> None:
        ids = [slot_or_line.id] if isinstance(slot_or_line, PlanLine) else slot_or_line.ids
        for line_id in ids:
            self.dropped.append(DroppedLine(line_id=line_id, reason=reason))
        self.warnings.append(f"line {'+'.join(ids)} dropped: {reason}")


class PlanContext:
    """The manifest, its probes and settings, and the problems found so far (for every language)."""

    def __init__(
        self,
        loaded: LoadedManifest,
        media: Mapping[str, MediaInfo],
        media_errors: Mapping[str, MediaError],
        hash_fn: HashFn,
        ops_dir: Path,
        number_results: int = 1,
        request_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.request_options = dict(request_options or {})
        self.loaded = loaded
        self.manifest: Manifest = loaded.manifest
        self.media = media
        self.media_errors = media_errors
        self.hash_fn = hash_fn
        self.ops_dir = ops_dir
        self.number_results = number_results
        self.problems: list[ManifestProblem] = list(loaded.problems)
        self.video_ref = loaded.resolve(self.manifest.video)
        self.video = self._video()

    def media_problem(self, ref: str, what: str) -> tuple[str, str]:
        """(message, fix) for a file that has no probe result."""
        err = self.media_errors.get(ref)
        if err is None:
            return f"{what} {ref} was not probed", "probe every file the manifest names before planning"
        name = type(err).__name__
        reason = err.message
        if name in ("MediaNotFound", "NotAFile"):
            fix = f"check the path (relative to the manifest's folder {self.loaded.base_dir})"
        elif name == "FFmpegTimeout":
            fix = "check that the file or URL is reachable and not huge, or raise the probe timeout"
        else:
            fix = f"replace {what} with a readable media file (try: ffprobe {ref})"
        return f"{what} {ref}: {reason}", fix

    def _video(self) -> VideoFacts | None:
        info = self.media.get(self.video_ref)
        if info is None:
            message, fix = self.media_problem(self.video_ref, "video")
            self.problems.append(self.loaded.problem(("video",), message, fix))
            return None
        if info.video is None:
            self.problems.append(
                self.loaded.problem(
                    ("video",),
                    f"video {self.video_ref} has no video stream (an audio-only file?)",
                    "point `video` at the source video with the faces to lip-sync",
                )
            )
            return None
        stream = info.video
        frames = stream.frame_count
        if frames is None and stream.fps > 0:
            frames = round(Fraction(repr(stream.duration or info.duration)) * stream.fps)
        return VideoFacts(
            fps=stream.fps if stream.fps > 0 else None,
            frames=frames,
            width=stream.width,
            height=stream.height,
            duration=info.duration,
        )

    def audio_info(self, ref: str) -> tuple[MediaInfo | None, str | None, str | None]:
        """(info, message, fix): the info of an audio file, or why it cannot be used."""
        info = self.media.get(ref)
        if info is None:
            message, fix = self.media_problem(ref, "audio file")
            return None, message, fix
        if not info.audio:
            return (
                None,
                f"audio file {ref} has no audio stream",
                "give a file with sound (WAV, MP3, M4A, ...)",
            )
        return info, None, None

    @staticmethod
    def audio_duration(info: MediaInfo) -> Fraction:
        seconds = info.audio[0].duration or info.duration
        return Fraction(repr(float(seconds)))

    def video_is_vfr(self) -> bool:
        info = self.media.get(self.video_ref)
        return bool(info and info.video and info.video.variable_frame_rate)
