"""FrameClock: which frame is at t, and when frame k starts, at k / fps or at the frames' own timestamps."""

from __future__ import annotations

from fractions import Fraction

import pytest

from prefect_lipsync.media.frame_clock import FrameClock
from prefect_lipsync.media.info import FrameTimes, VideoStream
from prefect_lipsync.media.probe import frame_times_from_packets, is_uneven

F = Fraction


def dropped_frames_clock() -> FrameClock:
    """30 fps nominal, frames 3-5 of every 20 missing: 255 frames over 10 s."""
    starts = [F(n, 30) for n in range(300) if not 3 <= n % 20 <= 5]
    return FrameClock.from_timestamps(starts, F(10), nominal=F(30))


def test_a_constant_clock_puts_frame_k_at_k_over_fps_exactly() -> None:
    clock = FrameClock.constant(F(30000, 1001), 30, F("1.001"))
    assert clock.end == F(1001, 1000) and clock.count == 30 and not clock.variable
    assert clock.start_of(7) == F(7 * 1001, 30000)
    assert clock.nearest_boundary(F(7 * 1001, 30000) + F(1, 100)) == 7
    assert clock.boundary_at_or_after(F(7 * 1001, 30000) + F(1, 100_000)) == 8
    assert clock.shown_at(F(1)) == 29 and clock.shown_at(F(5)) == 29  # clamped to the last frame


def test_a_frame_count_that_does_not_fill_the_length_leaves_the_end_to_the_timestamps() -> None:
    # 255 frames at a nominal 30 fps say 8.5 s; the stream's timestamps say 10 s: the end is 10 s.
    assert FrameClock.constant(F(30), 255, F(10)).end == 10
    assert FrameClock.constant(F(25), 250, F("10.01")).end == 10  # within half a frame: the exact count


def test_timestamps_place_frames_where_they_are_not_where_the_rate_says() -> None:
    clock = dropped_frames_clock()
    assert clock.variable and clock.count == 255 and clock.end == 10
    assert clock.start_of(3) == F(6, 30)  # the 4th frame is the source's 7th: 3, 4, 5 were dropped
    assert clock.shown_at(F(18, 100)) == 2  # frame 2 stays on screen through the gap
    assert clock.nearest_boundary(F(18, 100)) == 3  # 0.2 is nearer than 0.0667
    assert clock.boundary_at_or_after(F(8)) == 240 - 36  # 12 groups of 20 before 8 s lost 3 each
    assert clock.start_of(255) == 10 and clock.boundary_at_or_after(F(11)) == 255


def test_a_window_holds_its_frame_and_no_other() -> None:
    clock = dropped_frames_clock()
    for k in (0, 2, 3, 100, 254):
        low, high = clock.window(k)
        assert low < clock.start_of(k) < high
        assert clock.shown_at(low) < k or (k == 0 and low < 0)
        assert clock.shown_at(high) == k


def test_packets_give_sorted_frame_times_and_the_last_frame_lasts_as_the_one_before() -> None:
    # B-frames come in decode order; the last packet of a concat has no duration.
    rows = [
        {"pts": p, "dts": "N/A", "duration": d}
        for p, d in (("0", "40"), ("80", "40"), ("40", "40"), ("120", "N/A"))
    ]
    times = frame_times_from_packets(rows, F(1, 1000))
    assert times is not None and times.pts == [0, 40, 80, 120] and times.end == 160
    assert not is_uneven(times)
    starting_late = frame_times_from_packets([{"pts": "1000"}, {"pts": "1040", "duration": "40"}], F(1, 1000))
    assert starting_late is not None and starting_late.pts == [0, 40] and starting_late.end == 80
    assert frame_times_from_packets([{"pts": "N/A", "dts": "N/A"}], F(1, 1000)) is None


def test_a_change_of_rate_or_a_dropped_frame_is_uneven_jitter_of_a_tick_is_not() -> None:
    assert is_uneven(FrameTimes(time_base=F(1, 1000), pts=[0, 42, 83, 125, 158, 192, 225], end=258))
    assert is_uneven(FrameTimes(time_base=F(1, 30), pts=[0, 1, 2, 6, 7], end=8))
    assert not is_uneven(FrameTimes(time_base=F(1, 1000), pts=[0, 33, 67, 100, 133, 167], end=200))


@pytest.mark.parametrize(
    ("rotation", "shown"), [(0, (320, 180)), (90, (180, 320)), (180, (320, 180)), (270, (180, 320))]
)
def test_the_shown_size_turns_with_the_display_matrix(rotation: int, shown: tuple[int, int]) -> None:
    stream = VideoStream(index=0, codec="h264", width=320, height=180, fps=F(25), rotation=rotation)
    assert stream.shown_size == shown
