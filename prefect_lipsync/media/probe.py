"""Probe media files with ffprobe: one file, or many in parallel, through a persistent cache.

ffprobe's start-up (loading some 200 shared libraries) costs more than reading a small file's
header, so many files are probed by threads each waiting on its own ffprobe process, and a file
that has not changed since its last probe is not probed at all (see `cache.ProbeCache`).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, overload

from prefect_lipsync.media.cache import FileKey, ProbeCache, default_probe_cache
from prefect_lipsync.media.errors import FFmpegFailed, MediaError
from prefect_lipsync.media.ffmpeg_runner import run_ffprobe_json, run_process
from prefect_lipsync.media.info import AudioStream, FrameTimes, MediaInfo, VideoStream

DEFAULT_PROBE_TIMEOUT_S = 30.0
# When a stream's length is unknown, r_frame_rate and avg_frame_rate may differ by this share.
VFR_RELATIVE_TOLERANCE = 0.001
#: Reading a variable-rate stream's packet timestamps reads the whole file: it gets this much time at least.
TIMESTAMPS_MIN_TIMEOUT_S = 300.0
#: Frames whose spacing differs from the usual one by more than this share make a variable frame rate.
VFR_SPACING_TOLERANCE = Fraction(1, 10)
_SMPTE_TAG_RE = re.compile(r"^\d{1,2}:\d{2}:\d{2}[:;]\d{2,3}$")
_URL_RE = re.compile(r"^https?://", re.IGNORECASE)


class MediaNotFound(MediaError):
    """The path does not exist."""


class NotAFile(MediaError):
    """The path is a directory (or another thing that is not a file)."""


class NotMediaFile(MediaError):
    """ffprobe cannot read the file, or finds no audio or video in it; `stderr_tail` says what it said."""

    def __init__(self, path: str | Path | None, message: str, stderr_tail: str = "") -> None:
        self.stderr_tail = stderr_tail
        super().__init__(path, message)


class NoVideoStream(MediaError):
    """A video was needed but the file has no video stream."""


class ProbeErrors(MediaError):
    """Several files failed to probe: `errors` maps each given path to its error, `results` holds the rest."""

    def __init__(self, errors: Mapping[str, MediaError], results: Mapping[str, MediaInfo]) -> None:
        self.errors = dict(errors)
        self.results = dict(results)
        total = len(self.errors) + len(self.results)
        lines = [f"{len(self.errors)} of {total} files could not be probed:"]
        lines += [f"  {err}" for err in self.errors.values()]
        super().__init__(None, "\n".join(lines))


class _Default(enum.Enum):
    CACHE = "default cache"


DEFAULT_CACHE: Literal[_Default.CACHE] = _Default.CACHE
CacheArg = ProbeCache | None | Literal[_Default.CACHE]


def is_url(path: str | Path) -> bool:
    return isinstance(path, str) and bool(_URL_RE.match(path))


# ---- the pure part: ffprobe's JSON -> MediaInfo -------------------------------------------------


def _fraction(value: object) -> Fraction | None:
    """ffprobe's "30000/1001"; None for "0/0", "N/A" or nothing."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None
    return parsed if parsed > 0 else None


def _float(value: object) -> float | None:
    try:
        parsed = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return parsed if parsed >= 0 else None


def _tag_duration(stream: Mapping[str, Any]) -> float | None:
    """Matroska keeps a stream's length only in a `DURATION` tag ("00:00:01.001000000")."""
    tags = stream.get("tags") or {}
    for name, value in tags.items():
        if name.upper().startswith("DURATION") and isinstance(value, str):
            match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", value.strip())
            if match:
                hours, minutes, seconds = match.groups()
                return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None


def _stream_duration(stream: Mapping[str, Any]) -> float | None:
    return _float(stream.get("duration")) or _tag_duration(stream)


def is_variable_frame_rate(fps: Fraction, avg_fps: Fraction | None, duration: float | None) -> bool:
    """r_frame_rate and avg_frame_rate disagree by more than one frame over the stream (or 0.1%)."""
    if avg_fps is None or avg_fps == fps:
        return False
    if duration:
        return abs(float(fps - avg_fps)) * duration > 1.0
    return abs(float(fps - avg_fps)) > VFR_RELATIVE_TOLERANCE * float(fps)


def display_rotation(stream: Mapping[str, Any]) -> tuple[int, list[int] | None]:
    """(degrees, matrix): how the display matrix turns the stored picture, as ffprobe reports it.

    ffprobe gives the matrix in the stream's side data (with its `rotation`); files written by
    older tools carry a `rotate` tag instead. Degrees are normalised to 0, 90, 180 or 270.
    """
    matrix: list[int] | None = None
    degrees: float | None = None
    for side in stream.get("side_data_list") or []:
        if not isinstance(side, Mapping) or "matrix" not in str(side.get("side_data_type", "")).lower():
            continue
        text = side.get("displaymatrix")
        if isinstance(text, str):
            numbers = [int(n) for row in text.strip().splitlines() for n in row.split(":", 1)[-1].split()]
            matrix = numbers if len(numbers) == 9 else None
        value = side.get("rotation")
        if isinstance(value, int | float) and not isinstance(value, bool):
            degrees = float(value)
    if degrees is None:
        tag = (stream.get("tags") or {}).get("rotate")
        degrees = _float(tag) if isinstance(tag, str) else None
    if degrees is None or degrees != degrees:  # none, or NaN
        return 0, matrix
    return round(degrees / 90) * 90 % 360, matrix


def source_timecode(data: Mapping[str, Any]) -> str | None:
    """The start timecode of a file: its tmcd track's, else the video stream's, else the container's tag."""
    streams = [s for s in data.get("streams") or [] if isinstance(s, Mapping)]
    ordered = sorted(streams, key=lambda s: 0 if s.get("codec_tag_string") == "tmcd" else 1)
    tag_sets = [s.get("tags") or {} for s in ordered] + [(data.get("format") or {}).get("tags") or {}]
    for tags in tag_sets:
        for name, value in tags.items():
            if name.lower() == "timecode" and isinstance(value, str) and _SMPTE_TAG_RE.match(value.strip()):
                return value.strip()
    return None


def needs_frame_times(video: VideoStream) -> bool:
    """Whether the header leaves frame times in doubt: the rates disagree, or the frame count does not
    fill the stream's length at its nominal rate (dropped frames)."""
    if video.variable_frame_rate:
        return True
    if video.frame_count is None or not video.duration:
        return False
    return abs(video.frame_count - video.duration * float(video.fps)) > 1.0


def frame_times_from_packets(rows: Iterable[Mapping[str, str]], time_base: Fraction) -> FrameTimes | None:
    """Each frame's start from the packets' pts (dts when pts is missing); None when a packet has neither.

    The last frame lasts its own duration, or as long as the one before it when none is given.
    """
    starts: list[int] = []
    ends: list[int] = []
    for row in rows:
        stamp = row.get("pts", "N/A")
        stamp = stamp if stamp.lstrip("-").isdigit() else row.get("dts", "N/A")
        if not stamp.lstrip("-").isdigit():
            return None
        starts.append(int(stamp))
        length = row.get("duration", "")
        if length.isdigit() and int(length) > 0:
            ends.append(int(stamp) + int(length))
    if not starts:
        return None
    starts.sort()
    first = starts[0]
    end = max([*ends, starts[-1]])
    if len(starts) > 1 and end <= starts[-1]:
        end = starts[-1] + (starts[-1] - starts[-2])
    return FrameTimes(time_base=time_base, pts=[p - first for p in starts], end=end - first)


def is_uneven(times: FrameTimes) -> bool:
    """Frames come at more than one spacing (beyond VFR_SPACING_TOLERANCE of the usual one)."""
    steps = sorted(b - a for a, b in zip(times.pts, times.pts[1:], strict=False) if b > a)
    if len(steps) < 2:
        return False
    usual = steps[len(steps) // 2]
    return any(abs(step - usual) > usual * VFR_SPACING_TOLERANCE for step in steps)


def with_frame_times(video: VideoStream, times: FrameTimes | None) -> VideoStream:
    """`video` with its frames counted and timed from their timestamps (unchanged without them)."""
    if times is None:
        return video
    return video.model_copy(
        update={
            "frame_times": times,
            "frame_count": len(times.pts),
            "duration": float(times.end * times.time_base),
            "variable_frame_rate": is_uneven(times),
        }
    )


def _video_stream(path: str, stream: Mapping[str, Any], container_duration: float | None) -> VideoStream:
    fps = _fraction(stream.get("r_frame_rate"))
    avg_fps = _fraction(stream.get("avg_frame_rate"))
    if fps is None:
        fps = avg_fps
    if fps is None:
        raise MediaError(path, f"video stream {stream.get('index', 0)} reports no frame rate")
    duration = _stream_duration(stream)
    length = duration if duration is not None else container_duration
    vfr = is_variable_frame_rate(fps, avg_fps, length)
    nb_frames = stream.get("nb_frames")
    frame_count: int | None
    if isinstance(nb_frames, str) and nb_frames.isdigit() and int(nb_frames) > 0:
        frame_count = int(nb_frames)
    elif length:
        # No frame count in the header (Matroska, WebM): estimate with the rate frames really come at.
        rate = avg_fps if vfr and avg_fps is not None else fps
        frame_count = round(length * rate)
    else:
        frame_count = None
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    rotation, matrix = display_rotation(stream)
    shown = (height, width) if rotation % 180 == 90 else (width, height)
    return VideoStream(
        index=int(stream.get("index", 0)),
        codec=str(stream.get("codec_name") or "unknown"),
        width=width,
        height=height,
        fps=fps,
        avg_fps=avg_fps,
        frame_count=frame_count,
        duration=duration,
        variable_frame_rate=vfr,
        rotation=rotation,
        display_matrix=matrix,
        display_width=shown[0],
        display_height=shown[1],
    )


def _audio_stream(stream: Mapping[str, Any]) -> AudioStream:
    return AudioStream(
        index=int(stream.get("index", 0)),
        codec=str(stream.get("codec_name") or "unknown"),
        sample_rate=int(_float(stream.get("sample_rate")) or 0),
        channels=int(stream.get("channels") or 0),
        channel_layout=str(stream.get("channel_layout") or "") or None,
        duration=_stream_duration(stream),
    )


def media_info_from_ffprobe(
    path: str, data: Mapping[str, Any], *, size_bytes: int | None = None
) -> MediaInfo:
    """Turn `ffprobe -show_format -show_streams -of json` output into MediaInfo (no I/O)."""
    streams = [s for s in data.get("streams") or [] if isinstance(s, Mapping)]
    fmt: Mapping[str, Any] = data.get("format") or {}
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos and not audios:
        raise NotMediaFile(path, "not a media file ffprobe can read: it found no audio or video stream")
    container_duration = _float(fmt.get("duration"))
    stream_durations = [d for d in (_stream_duration(s) for s in [*videos, *audios]) if d is not None]
    duration = container_duration or max(stream_durations, default=0.0)
    size = _float(fmt.get("size"))
    return MediaInfo(
        path=path,
        duration=duration,
        size_bytes=int(size) if size is not None else size_bytes,
        format_name=str(fmt.get("format_name") or ""),
        timecode=source_timecode(data),
        video=_video_stream(path, videos[0], duration or None) if videos else None,
        audio=[_audio_stream(s) for s in audios],
    )


def _video_time_base(data: Mapping[str, Any], index: int) -> Fraction | None:
    for stream in data.get("streams") or []:
        if isinstance(stream, Mapping) and stream.get("index") == index:
            return _fraction(stream.get("time_base"))
    return None


# ---- the I/O part ---------------------------------------------------------------------------------


def _check_local(path: str | Path) -> None:
    """Say plainly what is wrong with a local path before ffprobe says it less plainly."""
    if not os.path.lexists(path):
        raise MediaNotFound(path, "file not found")
    if os.path.isdir(path):
        raise NotAFile(path, "is a directory, not a media file")
    if not os.path.exists(path):
        raise MediaNotFound(path, "file not found (a broken symbolic link)")
    if not os.path.isfile(path):
        raise NotAFile(path, "is not a regular file")


def read_frame_times(path: str, index: int, time_base: Fraction, timeout: float) -> FrameTimes | None:
    """The timestamps of every packet of stream `index` (no decoding, but the whole file is read)."""
    argv = ["ffprobe", "-v", "error", "-select_streams", str(index)]
    argv += ["-show_entries", "packet=pts,dts,duration", "-of", "compact=p=0", path]
    done = run_process(argv, timeout=max(timeout, TIMESTAMPS_MIN_TIMEOUT_S), path=path)
    rows = (
        dict(field.split("=", 1) for field in line.split("|") if "=" in field)
        for line in done.stdout.decode("ascii", "replace").splitlines()
        if line.strip()
    )
    return frame_times_from_packets(rows, time_base)


def _probe_uncached(path: str, timeout: float) -> MediaInfo:
    try:
        data = run_ffprobe_json(path, timeout=timeout)
    except FFmpegFailed as exc:
        last = exc.stderr_tail.strip().splitlines()[-1] if exc.stderr_tail.strip() else ""
        # ffprobe prefixes its reason with the path; keep the reason only.
        reason = last.split(": ", 1)[1] if last.startswith(f"{path}: ") else last
        detail = f" ({reason})" if reason else ""
        raise NotMediaFile(path, f"not a media file ffprobe can read{detail}", exc.stderr_tail) from exc
    info = media_info_from_ffprobe(path, data)
    if info.video is not None:
        info = info.model_copy(update={"video": timed(path, data, info.video, timeout)})
    return info


def timed(path: str, data: Mapping[str, Any], video: VideoStream, timeout: float) -> VideoStream:
    """`video` (from ffprobe's `data` of `path`) with its frames' timestamps, when its header leaves
    them in doubt: then its frame count, length and frame times come from them."""
    if not needs_frame_times(video):
        return video
    time_base = _video_time_base(data, video.index)
    if time_base is None:
        return video
    return with_frame_times(video, read_frame_times(path, video.index, time_base, timeout))


def _probe_s3(ref: str, timeout: float, cache: ProbeCache | None) -> MediaInfo:
    """ffprobe cannot read s3://: probe the local copy in the media cache, and name the ref in errors."""
    from prefect_lipsync.storage import ObjectNotFound, StorageError, materialize  # lazily: no cycle

    try:
        local = materialize(ref)
    except StorageError as exc:
        kind = MediaNotFound if isinstance(exc, ObjectNotFound) else MediaError
        raise kind(ref, exc.message + (f" ({exc.fix})" if exc.fix else "")) from exc
    try:
        info = _probe_one(str(local), timeout, cache)
    except NotMediaFile as exc:
        raise NotMediaFile(ref, exc.message, exc.stderr_tail) from exc
    except MediaError as exc:
        raise type(exc)(ref, exc.message) from exc
    return info.model_copy(update={"path": ref})


def _probe_one(path: str, timeout: float, cache: ProbeCache | None) -> MediaInfo:
    if path.lower().startswith("s3://"):
        return _probe_s3(path, timeout, cache)
    if is_url(path):
        return _probe_uncached(path, timeout)
    _check_local(path)
    key = FileKey.of(path) if cache is not None else None
    if cache is not None and key is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit if hit.path == path else hit.model_copy(update={"path": path})
    info = _probe_uncached(path, timeout)
    # Store only if the file did not change while ffprobe read it.
    if cache is not None and key is not None and FileKey.of(path) == key:
        cache.put(key, info)
    return info


def _resolve_cache(cache: CacheArg) -> ProbeCache | None:
    return default_probe_cache() if cache is DEFAULT_CACHE else cache


def probe(
    path: str | Path, *, timeout: float = DEFAULT_PROBE_TIMEOUT_S, cache: CacheArg = DEFAULT_CACHE
) -> MediaInfo:
    """Probe one local file, http(s) URL or s3:// object; an unchanged local file is answered from the cache.

    An s3:// object is first copied into the bounded local media cache (`prefect_lipsync.storage`).

    Raises MediaNotFound, NotAFile, NotMediaFile, FFmpegTimeout or FFmpegNotFound (all MediaError),
    each naming the path.
    """
    resolved = _resolve_cache(cache)
    info = _probe_one(str(path), timeout, resolved)
    if resolved is not None:
        resolved.save()
    return info


@overload
def probe_many(
    paths: Iterable[str | Path],
    *,
    timeout: float = ...,
    max_workers: int | None = ...,
    cache: CacheArg = ...,
    return_errors: Literal[False] = ...,
) -> dict[str, MediaInfo]: ...


@overload
def probe_many(
    paths: Iterable[str | Path],
    *,
    timeout: float = ...,
    max_workers: int | None = ...,
    cache: CacheArg = ...,
    return_errors: Literal[True],
) -> dict[str, MediaInfo | MediaError]: ...


def probe_many(
    paths: Iterable[str | Path],
    *,
    timeout: float = DEFAULT_PROBE_TIMEOUT_S,
    max_workers: int | None = None,
    cache: CacheArg = DEFAULT_CACHE,
    return_errors: bool = False,
) -> dict[str, MediaInfo] | dict[str, MediaInfo | MediaError]:
    """Probe many files at once, keyed by each path as given (as a string), in the order given.

    Every file is probed before any error is raised; then one ProbeErrors lists all failing files
    (its `results` holds the others). With `return_errors=True` each failing path maps to its
    MediaError instead. Default workers: twice the CPU count, as each mostly waits on a process.
    """
    names = list(dict.fromkeys(str(p) for p in paths))
    resolved = _resolve_cache(cache)
    outcomes: dict[str, MediaInfo | MediaError] = {}

    def run(name: str) -> MediaInfo | MediaError:
        try:
            return _probe_one(name, timeout, resolved)
        except MediaError as exc:
            return exc

    # Cache hits need no thread: answer them first, hand only the misses to the pool.
    misses: list[str] = []
    for name in names:
        hit = _cached(name, resolved)
        if hit is not None:
            outcomes[name] = hit
        else:
            misses.append(name)
    if misses:
        workers = max_workers or min(32, 2 * (os.cpu_count() or 1))
        workers = max(1, min(workers, len(misses)))
        if workers == 1:
            outcomes.update((name, run(name)) for name in misses)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ffprobe") as pool:
                outcomes.update(zip(misses, pool.map(run, misses), strict=True))
    if resolved is not None:
        resolved.save()
    ordered = {name: outcomes[name] for name in names}
    if return_errors:
        return ordered
    errors = {n: o for n, o in ordered.items() if isinstance(o, MediaError)}
    results = {n: o for n, o in ordered.items() if isinstance(o, MediaInfo)}
    if errors:
        raise ProbeErrors(errors, results)
    return results


def _cached(name: str, cache: ProbeCache | None) -> MediaInfo | None:
    if cache is None or is_url(name) or name.lower().startswith("s3://"):
        return None
    key = FileKey.of(name)
    hit = cache.get(key) if key is not None else None
    if hit is None:
        return None
    return hit if hit.path == name else hit.model_copy(update={"path": name})


def require_video(info: MediaInfo) -> VideoStream:
    """The video stream of `info`, or NoVideoStream when the file has none."""
    if info.video is None:
        raise NoVideoStream(info.path, "has no video stream (audio-only?); a lip-sync source must be a video")
    return info.video
