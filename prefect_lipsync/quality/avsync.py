"""A/V offset: where the submitted audio sits in the output's audio, by cross-correlation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg_remembered
from prefect_lipsync.quality.analysis import PCM_RATE, pcm_to_float

Signal = npt.NDArray[np.float32]


@dataclass(frozen=True)
class OffsetMeasure:
    """Positive offset: the output plays the audio later than planned."""

    offset_s: float
    correlation: float


def decode_pcm16k(path: Path, *, timeout: float = 120.0) -> Signal:
    """The first audio stream of `path` as 16 kHz mono float32 (decoded once per process while unchanged)."""
    pcm = run_ffmpeg_remembered(
        [
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-ac",
            "1",
            "-ar",
            str(PCM_RATE),
            "-f",
            "s16le",
            "pipe:1",
        ],
        inputs=[path],
        timeout=timeout,
        path=path,
    )
    return pcm_to_float(pcm)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def measure_offset(
    reference: Signal, output: Signal, *, planned_start_s: float, search_s: float, rate: int = PCM_RATE
) -> OffsetMeasure | None:
    """Find `reference` in `output` near `planned_start_s`; None when either side is (nearly) silent.

    The correlation is normalised by the energy of the reference and of the output window it lines
    up with, so 1.0 means the same waveform (any gain).
    """
    ref = reference.astype(np.float64)
    ref = ref - ref.mean() if ref.size else ref
    ref_energy = float(np.dot(ref, ref))
    if ref.size < rate // 10 or ref_energy <= 1e-9:
        return None
    search = round(search_s * rate)
    planned = round(planned_start_s * rate)
    lo = max(0, planned - search)
    hi = min(output.size, planned + search + ref.size)
    window = output[lo:hi].astype(np.float64)
    if window.size < ref.size:
        return None
    window = window - window.mean()
    n = _next_pow2(window.size + ref.size)
    # corr[k] = sum_i window[i + k] * ref[i], for every shift k where ref fits in the window.
    corr = np.fft.irfft(np.fft.rfft(window, n) * np.conj(np.fft.rfft(ref, n)), n)[
        : window.size - ref.size + 1
    ]
    squares = np.concatenate(([0.0], np.cumsum(window * window)))
    window_energy = squares[ref.size :] - squares[: squares.size - ref.size]
    norm = np.sqrt(np.maximum(window_energy, 1e-12) * ref_energy)
    score = corr / norm
    best = int(np.argmax(score))
    correlation = float(score[best])
    if not np.isfinite(correlation) or window_energy[best] <= 1e-9:
        return None
    return OffsetMeasure(offset_s=(lo + best - planned) / rate, correlation=correlation)
