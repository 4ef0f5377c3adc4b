"""Snapping times to video frames and to sync-3's 0.01 s grid, in exact arithmetic.

A time t is snapped to frame k = round(t * fps), then to the first 0.01 s step at or after that
frame's start: t' = ceil(k / fps * 100) / 100. As one step (0.01 s) is shorter than a frame below
100 fps, t' lies inside frame k, so a player showing the frame at t' shows frame k:
floor(t' * fps) == k. A video whose frame rate varies has its frames at their own timestamps
(`FrameClock`); the same rule applies to them.
"""

from __future__ import annotations

import math
from fractions import Fraction

from prefect_lipsync.media.frame_clock import FrameClock

GRID = Fraction(1, 100)


def frame_at(t: Fraction, fps: Fraction) -> int:
    """The nearest frame boundary to `t` (half a frame rounds up)."""
    return math.floor(t * fps + Fraction(1, 2))


def frame_shown_at(t: Fraction, fps: Fraction) -> int:
    """The frame a player shows at time `t`."""
    return math.floor(t * fps)


def frame_start_on_grid(k: int, fps: Fraction) -> Fraction:
    """The first 0.01 s step at or after the start of frame `k`."""
    return Fraction(math.ceil(Fraction(k) / fps * 100), 100)


def boundary_on_grid(k: int, clock: FrameClock) -> Fraction:
    """The first 0.01 s step at or after boundary `k` of `clock` (its timestamps when the rate varies)."""
    return Fraction(math.ceil(clock.start_of(k) * 100), 100)


def snap(t: Fraction, fps: Fraction) -> Fraction:
    """`t` snapped to its nearest frame, then onto the 0.01 s grid inside that frame."""
    return frame_start_on_grid(frame_at(t, fps), fps)


def grid_round(t: Fraction) -> Fraction:
    """Nearest 0.01 s step (halves up), exactly."""
    return Fraction(math.floor(t * 100 + Fraction(1, 2)), 100)


def grid_floor(t: Fraction) -> Fraction:
    """Last 0.01 s step at or before `t`."""
    return Fraction(math.floor(t * 100), 100)


def grid_float(t: Fraction) -> float:
    """A grid time as the float whose repr is its two-decimal text (352/100 -> 3.52)."""
    if (t * 100).denominator != 1:
        raise ValueError(f"{t} is not on the 0.01 s grid")
    return float(t)
