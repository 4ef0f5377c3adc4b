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
from prefect_lipsync.manifest.timecode import TimeFormatError, format_seconds, smpte_to_seconds
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.frame_clock import FrameClock
from prefect_lipsync.media.info import MediaInfo

#: What `timecode_start` says to read the start timecode from the source video itself.
TIMECODE_FROM_SOURCE = "source"

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
    """What planning needs of the source video.

    `width` and `height` are the picture as people see it (the display matrix applied): speaker
    points and boxes are given on that picture. Frame times come from `clock`: the stream's
    timestamps when its rate varies, else k / fps.
    """

    fps: Fraction | None
    frames: int | None
    width: int
    height: int
    duration: float
    clock: FrameClock | None = None
    rotation: int = 0
    timecode: str | None = None  # the source's start timecode (tmcd track or tag), if any

    @property
    def end(self) -> Fraction | None:
        """Where the last frame stops, from the stream's timestamps (not frame count / nominal rate)."""
        if self.clock is not None:
            return self.clock.end
        if self.fps is None or self.frames is None:
            return None
        return Fraction(self.frames) / self.fps

    @property
    def size_text(self) -> str:
        """'1080x1920 video', and how it is stored when a display matrix turns it."""
        if not self.rotation:
            return f"{self.width}x{self.height} video"
        return f"{self.width}x{self.height} video as shown (stored turned by {self.rotation} degrees)"


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
        self.timecode_origin = self._timecode_origin()

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
        if not stream.fps > 0:
            return VideoFacts(None, stream.frame_count, *stream.shown_size, info.duration)
        if stream.duration is None:
            stream = stream.model_copy(update={"duration": info.duration})
        clock = stream.clock()
        return VideoFacts(
            fps=stream.fps,
            frames=clock.count,
            width=stream.shown_size[0],
            height=stream.shown_size[1],
            duration=info.duration,
            clock=clock,
            rotation=stream.rotation,
            timecode=info.timecode,
        )

    def _timecode_origin(self) -> tuple[str, Fraction] | None:
        """(label, seconds) of the timecode SMPTE times count from (`timecode_start`), or None."""
        wanted = self.manifest.timecode_start
        if wanted is None or self.video is None or self.video.fps is None:
            return None
        label = wanted.strip()
        if label == TIMECODE_FROM_SOURCE:
            if self.video.timecode is None:
                self.problems.append(
                    self.loaded.problem(
                        ("timecode_start",),
                        f"timecode_start is `source`, but video {self.video_ref} has no start timecode "
                        "(no tmcd track and no timecode tag)",
                        'give the start yourself, e.g. timecode_start: "01:00:00:00", or remove timecode_start',
                    )
                )
                return None
            label = self.video.timecode
        try:
            return label, smpte_to_seconds(label, self.video.fps)
        except TimeFormatError as exc:
            where = "the video's own timecode " if wanted.strip() == TIMECODE_FROM_SOURCE else ""
            self.problems.append(self.loaded.problem(("timecode_start",), f"{where}{exc}", exc.fix))
            return None

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

    def source_timecode_unused(self) -> str | None:
        """The source's start timecode when it is not 00:00:00:00 and the manifest does not count from it."""
        code = self.video.timecode if self.video is not None else None
        if code is None or self.manifest.timecode_start is not None:
            return None
        return None if set(code.replace(":", "").replace(";", "").replace(".", "")) <= {"0"} else code
