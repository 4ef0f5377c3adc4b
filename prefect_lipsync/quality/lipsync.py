"""Do the lips follow the audio? The mouth region's motion against the audio's envelope, over lags.

This stands in for SyncNet (whose weights cannot be had here) and is honest about what it is: a
correlation of two curves, both sampled once per video frame:
  motion    how much the mouth crop changes from one frame to the next (mean absolute difference);
  envelope  how much the audio's loudness (RMS over the frame) changes from one frame to the next.
A mouth opens and closes as syllables start and stop, so both curves peak together; the lag at
which their normalised correlation is highest is the lips' offset (positive: the lips are late),
and the confidence is how far that peak stands above the median of the correlation over all lags
(as SyncNet's confidence is the distance of the best offset from the median). A still mouth, a
mouth that moves with other speech, or no speech give a low confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# Below this mean absolute change per frame (gray levels) the mouth is still: encoder noise only.
STILL_MOUTH_LEVEL = 0.6
# Fewer frames than this in a window give a correlation that means nothing.
MIN_WINDOW_FRAMES = 20


@dataclass(frozen=True)
class LagMeasure:
    """The lips' lag behind the audio in one window, and how much to believe it."""

    lag_s: float
    confidence: float
    peak_correlation: float
    moving: bool  # False: the mouth hardly moved (no lip movement found)


def mouth_motion(crops: npt.NDArray[np.uint8]) -> FloatArray:
    """Per frame, the mean absolute change of the mouth crop since the frame before (0 for the first)."""
    if crops.shape[0] == 0:
        return np.zeros(0)
    pixels = crops.reshape(crops.shape[0], -1).astype(np.float64)
    change = np.abs(np.diff(pixels, axis=0)).mean(axis=1)
    return np.concatenate(([0.0], change))


def audio_envelope(pcm: npt.NDArray[np.float32], *, rate: int, fps: float, frames: int) -> FloatArray:
    """The audio's RMS over each video frame (frame k covers [k/fps, (k+1)/fps))."""
    edges = np.round(np.arange(frames + 1) / fps * rate).astype(np.int64)
    squares = np.concatenate(([0.0], np.cumsum(pcm.astype(np.float64) ** 2)))
    edges = np.clip(edges, 0, pcm.size)
    counts = np.maximum(edges[1:] - edges[:-1], 1)
    return np.asarray(np.sqrt((squares[edges[1:]] - squares[edges[:-1]]) / counts), dtype=np.float64)


def envelope_change(envelope: FloatArray) -> FloatArray:
    """How much the loudness changes into each frame (the audio side of `mouth_motion`)."""
    if envelope.size == 0:
        return envelope
    return np.concatenate(([0.0], np.abs(np.diff(envelope))))


def _standard(x: FloatArray) -> FloatArray | None:
    spread = float(x.std())
    return None if spread <= 1e-12 else (x - x.mean()) / spread


def lag_curve(motion: FloatArray, audio: FloatArray, start: int, end: int, max_lag: int) -> FloatArray:
    """Normalised correlation of audio[start:end] with motion shifted by each lag in -max_lag..max_lag.

    Lag L compares the audio of frame k with the mouth of frame k+L: a positive best lag means the
    lips move later than the sound. Callers keep start-max_lag >= 0 and end+max_lag <= len(motion).
    """
    ref = _standard(audio[start:end])
    out = np.zeros(2 * max_lag + 1)
    if ref is None:
        return out
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        shifted = _standard(motion[start + lag : end + lag])
        out[i] = 0.0 if shifted is None else float(np.mean(ref * shifted))
    return out


def _refine(curve: FloatArray, best: int) -> float:
    """Sub-frame position of the peak by a parabola through it and its neighbours."""
    if 0 < best < curve.size - 1:
        a, b, c = curve[best - 1], curve[best], curve[best + 1]
        bend = a - 2 * b + c
        if bend < 0:
            return best + float(np.clip(0.5 * (a - c) / bend, -0.5, 0.5))
    return float(best)


def measure_lag(
    motion: FloatArray, audio: FloatArray, *, start: int, end: int, fps: float, max_lag: int
) -> tuple[LagMeasure, FloatArray] | None:
    """The lips' lag in frames start..end (audio frames), searched over +-max_lag frames.

    Returns the measure and the correlation per lag; None when the window is too short once it is
    kept `max_lag` frames inside the file.
    """
    start, end = max(start, max_lag), min(end, motion.size - max_lag, audio.size)
    if end - start < MIN_WINDOW_FRAMES:
        return None
    window = motion[start - max_lag : end + max_lag]
    moving = bool(window.mean() >= STILL_MOUTH_LEVEL)
    curve = lag_curve(motion, audio, start, end, max_lag)
    best = int(np.argmax(curve))
    confidence = float(curve[best] - np.median(curve)) if moving else 0.0
    lag_frames = _refine(curve, best) - max_lag
    return LagMeasure(
        lag_s=lag_frames / fps, confidence=confidence, peak_correlation=float(curve[best]), moving=moving
    ), curve
