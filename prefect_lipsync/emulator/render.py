"""The emulator's output: the source picture, unchanged, with the audio laid out as the request says.

No lips move (no model weights can be had here). What is exact is the audio timeline: segment
crops placed at their windows with the original audio between them, or one whole track (given,
or spoken by espeak-ng) fitted to the video by the sync mode. `plan_audio` is the pure part;
`render` runs ffmpeg (built with ffmpeg-python) and is meant for a worker thread.
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from prefect_lipsync.emulator import cheap_outputs
from prefect_lipsync.emulator.render_cache import RENDER_CACHE
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.ffmpeg_runner import run_ffprobe_json, run_stream
from prefect_lipsync.media.synth import speak
from prefect_lipsync.runware.models import Sync3Request, SyncMode

SAMPLE_RATE = 48000
MAX_BOUNCE_PIECES = 64

EXTENSIONS = {"MP4": "mp4", "WEBM": "webm", "MOV": "mov"}
CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime"}


@dataclass(frozen=True)
class SourceInfo:
    """What the emulator needs to know of an input video."""

    duration: float
    width: int
    height: int
    fps: Fraction
    has_audio: bool


def probe_source(path: Path, timeout: float = 30.0) -> SourceInfo:
    """Probe an input video; MediaError when it has no video stream or no duration."""
    info = run_ffprobe_json(path, timeout=timeout)
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise MediaError(path, "has no video stream")
    duration = _float(video.get("duration")) or _float(info.get("format", {}).get("duration"))
    if not duration:
        raise MediaError(path, "has no known duration")
    rate = video.get("r_frame_rate") or video.get("avg_frame_rate") or "25/1"
    fps = Fraction(rate) if rate != "0/0" else Fraction(25)
    return SourceInfo(
        duration=duration,
        width=int(video["width"]),
        height=int(video["height"]),
        fps=fps,
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def probe_audio_duration(path: Path, timeout: float = 30.0) -> float:
    info = run_ffprobe_json(path, timeout=timeout)
    audio = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise MediaError(path, "has no audio stream")
    duration = _float(audio.get("duration")) or _float(info.get("format", {}).get("duration"))
    if not duration:
        raise MediaError(path, "has no known duration")
    return duration


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "N/A") else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- the plan (pure)


@dataclass(frozen=True)
class Original:
    """The source's own audio from `start` to `end` (seconds of the video)."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Clip:
    """Audio from input `source` (an index into the render's audio files), cropped and fitted."""

    source: int
    crop_start: float
    crop_end: float  # already clamped to the file's duration
    window: float  # the length it must fill
    mode: SyncMode

    @property
    def length(self) -> float:
        return self.window


Piece = Original | Clip


def plan_audio(request: Sync3Request, video_duration: float, audio_durations: list[float]) -> list[Piece]:
    """The output's audio timeline, piece by piece; it sums to `video_duration`.

    `audio_durations` are the durations of the audio files in order: inputs.audio (or the spoken
    speech) alone, or each segment's audio.
    """
    mode = request.effective_sync_mode
    segments = request.settings.segments if request.settings else None
    if not segments:
        # A whole track: inputs.audio or speech, fitted to the video by the sync mode.
        return [Clip(0, 0.0, audio_durations[0], video_duration, mode)]
    pieces: list[Piece] = []
    cursor = 0.0
    order = sorted(range(len(segments)), key=lambda i: segments[i].start_time)
    for i in order:
        seg = segments[i]
        start = min(seg.start_time, video_duration)
        end = min(seg.end_time, video_duration)
        if end <= start:
            continue
        if start > cursor:
            pieces.append(Original(cursor, start))
        file_len = audio_durations[i]
        crop_start = min(seg.audio_start_time, file_len)
        crop_end = min(seg.audio_end_time if seg.audio_end_time is not None else file_len, file_len)
        pieces.append(Clip(i, crop_start, crop_end, end - start, mode))
        cursor = end
    if cursor < video_duration:
        pieces.append(Original(cursor, video_duration))
    return pieces


def atempo_chain(factor: float) -> list[float]:
    """atempo factors whose product is `factor`, each within ffmpeg's 0.5-100 range."""
    chain: list[float] = []
    while factor < 0.5:
        chain.append(0.5)
        factor /= 0.5
    while factor > 100.0:
        chain.append(100.0)
        factor /= 100.0
    chain.append(factor)
    return chain


def crf_for(output_format: str, quality: int) -> int:
    """outputQuality 20-99 (higher is better) to the encoder's crf (lower is better)."""
    worst, best = (55, 15) if output_format == "WEBM" else (40, 16)
    return round(worst - (quality - 20) * (worst - best) / 79)


# --------------------------------------------------------------------------- ffmpeg


def _normalise(stream: Any) -> Any:
    return stream.filter("aresample", SAMPLE_RATE).filter(
        "aformat", sample_fmts="fltp", sample_rates=SAMPLE_RATE, channel_layouts="stereo"
    )


def _exact(stream: Any, length: float) -> Any:
    """Pad with silence and cut so the stream lasts exactly `length` seconds."""
    return stream.filter("apad", whole_dur=f"{length:.6f}").filter("atrim", duration=f"{length:.6f}")


def _fit(stream: Any, clip: Clip) -> Any:
    """Fit a cropped clip (starting at pts 0) to its window with the sync mode."""
    have = max(clip.crop_end - clip.crop_start, 0.0)
    if clip.mode == "remap" and have > 0:
        for factor in atempo_chain(have / clip.window):
            stream = stream.filter("atempo", f"{factor:.6f}")
    elif clip.mode == "bounce" and 0 < have < clip.window:
        count = min(math.ceil(clip.window / have), MAX_BOUNCE_PIECES)
        copies = stream.filter_multi_output("asplit", count)
        parts = [copies[k] if k % 2 == 0 else copies[k].filter("areverse") for k in range(count)]
        stream = ffmpeg.concat(*parts, v=0, a=1)
    # cut_off and silence: cut where the window ends, silence where the audio ends.
    return _exact(stream.filter("asetpts", "PTS-STARTPTS"), clip.window)


def variation_audio_offset(offsets: tuple[float, ...], index: int) -> float:
    """The audio offset of result `index` (EmulatorConfig.variation_audio_offsets; 0 past its end)."""
    return offsets[index] if 0 <= index < len(offsets) else 0.0


def _moved(stream: Any, offset: float, length: float) -> Any:
    """The audio `offset` seconds later (positive) or earlier, still exactly `length` long."""
    if offset > 0:
        stream = stream.filter("adelay", f"{round(offset * 1000)}", all=1)
    elif offset < 0:
        stream = stream.filter("atrim", start=f"{-offset:.6f}").filter("asetpts", "PTS-STARTPTS")
    return _exact(stream, length)


def _audio_feeds(uses: Counter[str], inputs: dict[str, Any]) -> dict[str, list[Any]]:
    """Per file, as many normalised audio streams as it has uses (`inputs`: files already opened)."""
    feeds: dict[str, list[Any]] = {}
    for path, count in uses.items():
        stream = _normalise(inputs.get(path, ffmpeg.input(path)).audio)
        if count == 1:
            feeds[path] = [stream]
        else:
            copies = stream.filter_multi_output("asplit", count)
            feeds[path] = [copies[k] for k in range(count)]
    return feeds


def build_command(
    *,
    video: Path,
    source: SourceInfo,
    pieces: list[Piece],
    audio_files: list[Path],
    output: Path,
    output_format: str,
    quality: int,
    audio_offset: float = 0.0,
) -> Any:
    """The ffmpeg-python graph writing `output` (format forced, so a temp name is fine).

    `audio_offset` moves the whole audio against the picture (a variation of a numberResults > 1 task).
    """
    duration = source.duration
    video_in = ffmpeg.input(str(video))
    originals = [p for p in pieces if isinstance(p, Original)]
    # One input per file, split when the file feeds several pieces (the same take cut into two lines):
    # ffmpeg-python merges equal nodes, so two reads of one file would be one node with two outputs.
    uses = Counter(str(audio_files[p.source]) for p in pieces if isinstance(p, Clip))
    if originals and source.has_audio:
        uses[str(video)] += 1
    feeds = _audio_feeds(uses, {str(video): video_in})
    base: Any = None
    split: Any = None
    if originals:
        base = (
            feeds[str(video)].pop(0)
            if source.has_audio
            else _normalise(
                ffmpeg.input(f"anullsrc=r={SAMPLE_RATE}:cl=stereo", f="lavfi", t=f"{duration:.6f}").audio
            )
        )
        base = _exact(base, duration)
        if len(originals) > 1:
            split = base.filter_multi_output("asplit", len(originals))
    streams = []
    used = 0
    for piece in pieces:
        if isinstance(piece, Original):
            src = split[used] if split is not None else base
            used += 1
            streams.append(
                src.filter("atrim", start=f"{piece.start:.6f}", end=f"{piece.end:.6f}").filter(
                    "asetpts", "PTS-STARTPTS"
                )
            )
        else:
            clip_in = feeds[str(audio_files[piece.source])].pop(0)
            cropped = clip_in.filter("atrim", start=f"{piece.crop_start:.6f}", end=f"{piece.crop_end:.6f}")
            streams.append(_fit(cropped.filter("asetpts", "PTS-STARTPTS"), piece))
    audio = streams[0] if len(streams) == 1 else ffmpeg.concat(*streams, v=0, a=1)
    audio = _exact(audio, duration)
    if audio_offset:
        audio = _moved(audio, audio_offset, duration)
    crf = crf_for(output_format, quality)
    # 4:2:0 needs even sizes; an odd-sized source keeps its size in 4:4:4 instead.
    pix_fmt = "yuv420p" if source.width % 2 == 0 and source.height % 2 == 0 else "yuv444p"
    options: dict[str, Any] = {"t": f"{duration:.6f}", "map_metadata": -1}
    if output_format == "WEBM":
        options.update(
            f="webm",
            vcodec="libvpx-vp9",
            crf=crf,
            **{"b:v": 0, "deadline": "realtime", "cpu-used": 8, "row-mt": 1},
            acodec="libopus",
            audio_bitrate="96k",
            pix_fmt=pix_fmt,
        )
    else:
        options.update(
            f="mov" if output_format == "MOV" else "mp4",
            vcodec="libx264",
            # The fastest preset: an emulator's encode is paid by every offline run and test (half the
            # CPU of "veryfast" at the same crf; the file is larger, which nobody downloads but us).
            preset="ultrafast",
            crf=crf,
            pix_fmt=pix_fmt,
            acodec="aac",
            audio_bitrate="128k",
            movflags="+faststart",
        )
    return ffmpeg.output(video_in.video, audio, str(output), **options)


def whole_track_file(request: Sync3Request, audio: Path | None, workdir: Path, timeout: float) -> Path | None:
    """The file of a whole-track request: inputs.audio, or the speech spoken by espeak-ng."""
    if audio is not None:
        return audio
    if request.speech is None:
        return None
    spoken = workdir / f"speech-{uuid.uuid4()}.wav"
    voice = request.speech.voice if request.speech.voice != "auto" else "en"
    try:
        return speak(request.speech.text, spoken, voice=voice, timeout=timeout)
    except MediaError:
        # An unknown voice name: espeak-ng's default voice says it all the same.
        return speak(request.speech.text, spoken, voice="en", timeout=timeout)


def render(
    request: Sync3Request,
    *,
    video: Path,
    source: SourceInfo,
    audio: Path | None,
    segment_audio: list[Path],
    output: Path,
    timeout: float,
    audio_offset: float = 0.0,
) -> Path:
    """Render one output file atomically (temp file + os.replace). Blocking: call from a thread.

    `audio_offset` (seconds, positive: later) moves the audio against the picture: how the variations
    of one task are made to differ (`variation_audio_offset`).
    """
    if cheap_outputs.reuse(request, video=video, output=output, audio_offset=audio_offset):
        return output  # PREFECT_LIPSYNC_EMULATOR_CHEAP_OUTPUTS: one rendering per request shape
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".render-", suffix=output.suffix, dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    spoken: Path | None = None
    try:
        if segment_audio:
            files = segment_audio
        else:
            track = whole_track_file(request, audio, output.parent, timeout)
            if track is None:
                raise MediaError(video, "the request has no audio to lay out")
            spoken = track if track != audio else None
            files = [track]
        durations = [probe_audio_duration(f, timeout) for f in files]
        pieces = plan_audio(request, source.duration, durations)
        command = build_command(
            video=video,
            source=source,
            pieces=pieces,
            audio_files=files,
            output=tmp,
            output_format=request.output_format,
            quality=request.output_quality,
            audio_offset=audio_offset,
        )
        try:
            argv = ffmpeg.compile(command, cmd="ffmpeg", overwrite_output=True)
        except ValueError as exc:  # ffmpeg-python refused the graph: a bug here, said as a render failure
            raise MediaError(output, f"the audio layout could not be built ({exc})") from exc
        cache_key = RENDER_CACHE.key(argv, inputs=[video, *files], output=tmp)
        if not RENDER_CACHE.fetch(cache_key, output):  # PREFECT_LIPSYNC_EMULATOR_RENDER_CACHE
            run_stream(command, timeout=timeout, path=output)
            os.replace(tmp, output)
            RENDER_CACHE.store(cache_key, output)
        cheap_outputs.keep(request, video=video, output=output, audio_offset=audio_offset)
    finally:
        tmp.unlink(missing_ok=True)
        if spoken is not None:
            spoken.unlink(missing_ok=True)
    return output
