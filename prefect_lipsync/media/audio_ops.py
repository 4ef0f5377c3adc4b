"""Audio the planner asks for: crop a source file to [start, end) s, speed it up a little, write WAV.

An op's output is named by a content key (the source's SHA-256 and the op's parameters), so the
same op is rendered once, whichever process asks and however the source file is named.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Self

import ffmpeg
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefect_lipsync.files import atomic_path
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.ffmpeg_runner import run_stream
from prefect_lipsync.media.hashing import cached_file_sha256
from prefect_lipsync.media.probe import probe

MAX_TEMPO = 1.10
# Bump when the rendering changes, so outputs rendered the old way are not reused.
RENDER_VERSION = 1
# A crop may end this far past the source's probed end (container durations are rounded).
END_SLACK_S = 0.05


class AudioOp(BaseModel):
    """Take `source`, keep [start, end) seconds, play it `tempo` times faster (pitch kept), write WAV."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="Path of the source audio (or video) file.")
    start: float = Field(default=0.0, ge=0.0, description="Crop start in the source, in seconds.")
    end: float | None = Field(
        default=None, description="Crop end in the source, in seconds (exclusive); None keeps the rest."
    )
    tempo: float = Field(
        default=1.0, ge=1.0, le=MAX_TEMPO, description="Speed-up factor, 1.0 to 1.10 (ffmpeg atempo)."
    )
    sample_rate: int | None = Field(
        default=None, gt=0, description="Output sample rate; None keeps the source's."
    )
    channels: int | None = Field(
        default=None, gt=0, le=8, description="Output channels; None keeps the source's."
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> Self:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end} s) must be after start ({self.start} s)")
        return self

    @property
    def output_duration(self) -> float | None:
        """Length of the rendered audio in seconds, when `end` is known."""
        return None if self.end is None else (self.end - self.start) / self.tempo

    def content_key(self, source_sha256: str) -> str:
        """SHA-256 of the source's content hash and the op's parameters (not the source's name)."""
        params = {
            "v": RENDER_VERSION,
            "source_sha256": source_sha256,
            "start": repr(float(self.start)),
            "end": None if self.end is None else repr(float(self.end)),
            "tempo": repr(float(self.tempo)),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
        }
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def output_name(key: str) -> str:
    return f"audio-{key}.wav"


_key_locks: dict[str, threading.Lock] = {}
_key_locks_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _key_locks_guard:
        return _key_locks.setdefault(key, threading.Lock())


def _seconds(value: float) -> str:
    """ffmpeg time syntax takes no exponent: 1e-05 must be written 0.000010."""
    return f"{value:.6f}"


def build_audio_stream(op: AudioOp, out_path: str | Path, *, source_rate: int, source_end: float) -> object:
    """The ffmpeg-python command for `op` writing WAV to `out_path` (no I/O).

    `source_rate` is the source's sample rate and `source_end` its length in seconds (used when
    `op.end` is None), so the output holds exactly round((end - start) / tempo * rate) samples.
    """
    # Input-side -ss seeks fast and ffmpeg then decodes up to the exact sample; atrim cuts the end
    # sample-exactly before atempo changes the time base.
    stream = ffmpeg.input(op.source, ss=_seconds(op.start)) if op.start > 0 else ffmpeg.input(op.source)
    audio = stream["a:0"]
    rate = source_rate
    if op.sample_rate is not None:
        # Resample first and explicitly: with only `-ar`, format negotiation may move the
        # resampler anywhere in the chain and the sample count below would be in the wrong rate.
        audio = audio.filter("aresample", op.sample_rate)
        rate = op.sample_rate
    end = op.end if op.end is not None else source_end
    if op.end is not None:
        audio = audio.filter("atrim", duration=_seconds(op.end - op.start))
    audio = audio.filter("asetpts", "PTS-STARTPTS")
    if op.tempo != 1.0:
        # atempo drops most of its last window at end of stream: feed it silence past the end,
        # then cut at the exact sample count.
        out_samples = round((end - op.start) / op.tempo * rate)
        audio = audio.filter("apad", pad_dur="0.5").filter("atempo", repr(op.tempo))
        audio = audio.filter("atrim", end_sample=out_samples)
    out_kwargs: dict[str, object] = {"format": "wav", "acodec": "pcm_s16le", "map_metadata": -1}
    if op.channels is not None:
        out_kwargs["ac"] = op.channels
    # bitexact: no encoder tag, so the same op gives the same bytes every time.
    return ffmpeg.output(audio, str(out_path), fflags="+bitexact", flags="+bitexact", **out_kwargs)


def render_audio_op(op: AudioOp, out_dir: str | Path, *, timeout: float = 120.0) -> Path:
    """Render `op` into `out_dir/audio-<key>.wav` and return its path; an existing output is reused.

    Raises MediaError when the source is missing, not audio, or shorter than the crop start/end.
    """
    key = op.content_key(cached_file_sha256(op.source))
    out = Path(out_dir) / output_name(key)
    with _lock_for(key):
        if out.is_file():
            return out
        info = probe(op.source, timeout=min(timeout, 30.0))
        if not info.audio:
            raise MediaError(op.source, "has no audio stream to crop")
        if info.duration and op.start >= info.duration:
            raise MediaError(
                op.source,
                f"crop start {op.start:g} s is at or past the end of the audio ({info.duration:g} s)",
            )
        if op.end is not None and info.duration and op.end > info.duration + END_SLACK_S:
            raise MediaError(
                op.source, f"crop end {op.end:g} s is past the end of the audio ({info.duration:g} s)"
            )
        with atomic_path(out) as tmp:
            command = build_audio_stream(
                op, tmp, source_rate=info.audio[0].sample_rate, source_end=info.duration
            )
            run_stream(command, timeout=timeout, path=op.source)
    return out
