"""Where each frame of a video starts, in exact seconds: at k / fps, or at its own timestamp.

A phone clip with dropped frames, or a clip whose rate changes halfway, has frames that do not sit
at k / fps: 255 frames at a nominal 30 fps may well last 10 s, not 8.5 s. `FrameClock` answers
"which frame is at t" and "when does frame k start" from the stream's timestamps when they were
read, and from the nominal rate otherwise, so callers never need to know which. Times are
`Fraction`s of a second counted from the first frame; a boundary k is where frame k starts
(boundary `count` is the end of the last frame).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class FrameClock:
    """Frame times of one video stream."""

    nominal: Fraction  # the stream's nominal rate (r_frame_rate); SMPTE labels count frames of it
    count: int  # frames in the stream
    end: Fraction  # where the last frame stops, seconds from the first frame's start
    starts: tuple[Fraction, ...] | None = None  # each frame's start when the rate varies

    @classmethod
    def constant(cls, fps: Fraction, frames: int | None, length: Fraction | None) -> FrameClock:
        """Frame k at k / fps. `length` (from timestamps) is the end unless the frame count agrees with it."""
        if frames is None:
            frames = round(length * fps) if length is not None else 0
        by_count = Fraction(frames) / fps
        if length is None or abs(by_count - length) <= 1 / (2 * fps):
            return cls(fps, frames, by_count)  # exact: 30000/1001-based times stay on their frames
        return cls(fps, frames, length)

    @classmethod
    def from_timestamps(cls, starts: Sequence[Fraction], end: Fraction, *, nominal: Fraction) -> FrameClock:
        """Frames at their own start times (sorted, the first at 0) and the end of the last one."""
        ordered = tuple(sorted(starts))
        return cls(nominal, len(ordered), max(end, ordered[-1] if ordered else Fraction(0)), ordered)

    @property
    def variable(self) -> bool:
        """Frames start at their own timestamps rather than at k / fps."""
        return self.starts is not None

    def start_of(self, k: int) -> Fraction:
        """Where boundary `k` is: the start of frame k, or the end of the last frame for k >= count."""
        if k >= self.count:
            return self.end
        k = max(k, 0)
        return self.starts[k] if self.starts is not None else Fraction(k) / self.nominal

    def nearest_boundary(self, t: Fraction) -> int:
        """The boundary nearest to `t` (a tie goes to the later one), in 0..count."""
        if self.starts is None:
            k = math.floor(t * self.nominal + Fraction(1, 2))
        else:
            k = bisect.bisect_left(self.starts, t)  # the first boundary at or after t (count: the end)
            if k > 0 and t - self.start_of(k - 1) < self.start_of(k) - t:
                k -= 1
        return min(max(k, 0), self.count)

    def boundary_at_or_after(self, t: Fraction) -> int:
        """The first boundary at or after `t` (rounds a time up to a frame), in 0..count."""
        k = math.ceil(t * self.nominal) if self.starts is None else bisect.bisect_left(self.starts, t)
        return min(max(k, 0), self.count)

    def window(self, k: int) -> tuple[Fraction, Fraction]:
        """The times nearer to frame k's start than to its neighbours': halfway to the one before and after.

        Seeking to the window's start lands on frame k (ffmpeg keeps the first frame at or after a
        seek time); a filter selecting the window's times picks frame k alone.
        """
        start = self.start_of(k)
        before = self.start_of(k - 1) if k > 0 else start - (self.start_of(1) - start)
        return (before + start) / 2, (start + self.start_of(k + 1)) / 2

    def shown_at(self, t: Fraction) -> int:
        """The frame a player shows at `t`, in 0..count-1."""
        k = math.floor(t * self.nominal) if self.starts is None else bisect.bisect_right(self.starts, t) - 1
        return min(max(k, 0), max(self.count - 1, 0))
