"""Measure what plays in each channel of a file's audio: the level of a tone in a stretch of time.

Import after `sys.path.insert(0, <tests dir>)` (pytest runs with --import-mode=importlib).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg, run_ffprobe_json

RATE = 16000


@dataclass(frozen=True)
class Channels:
    """A file's first audio stream, every channel kept, at 16 kHz."""

    samples: np.ndarray[Any, np.dtype[np.float32]]  # (frames, channels)
    layout: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, path: Path, stream: str = "a:0") -> Channels:
        info = run_ffprobe_json(path)
        audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
        first = audio[0] if stream == "a:0" else next(s for s in audio if f"{s['index']}" == stream)
        count = int(first["channels"])
        done = run_ffmpeg(["-i", str(path), "-map", f"0:{stream}", "-ar", str(RATE), "-f", "f32le", "pipe:1"])
        samples = np.frombuffer(done.stdout, dtype=np.float32).reshape(-1, count)
        layout = str(first.get("channel_layout") or f"{count} channels")
        from prefect_lipsync.media.mix import layout_channels

        names = layout_channels(layout) or tuple(f"c{i}" for i in range(count))
        return cls(samples, layout, names)

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / RATE

    def tone(self, channel: str, hz: float, start: float, end: float) -> float:
        """The amplitude (peak, 0..1) of a `hz` tone in `channel` between `start` and `end` seconds."""
        chunk = self.samples[int(start * RATE) : int(end * RATE), self.names.index(channel)].astype(
            np.float64
        )
        window = np.hanning(chunk.size)
        spectrum = np.abs(np.fft.rfft(chunk * window)) * 2 / window.sum()
        freqs = np.fft.rfftfreq(chunk.size, 1 / RATE)
        near = np.abs(freqs - hz) <= 2 * RATE / chunk.size
        return float(spectrum[near].max())

    def band(self, channel: str, low_hz: float, high_hz: float, start: float, end: float) -> float:
        """The RMS level of what plays in `channel` between `low_hz` and `high_hz` (speech, not tones)."""
        chunk = self.samples[int(start * RATE) : int(end * RATE), self.names.index(channel)].astype(
            np.float64
        )
        window = np.hanning(chunk.size)
        spectrum = np.abs(np.fft.rfft(chunk * window)) * 2 / window.sum()
        freqs = np.fft.rfftfreq(chunk.size, 1 / RATE)
        inside = (freqs >= low_hz) & (freqs <= high_hz)
        return float(np.sqrt(np.sum(spectrum[inside] ** 2) / 2))
