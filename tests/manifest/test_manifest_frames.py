"""Times: parsing every accepted notation exactly, and snapping to frames and the 0.01 s grid."""

from __future__ import annotations

from fractions import Fraction

import pytest

from prefect_lipsync.manifest.frames import frame_shown_at, grid_float, snap
from prefect_lipsync.manifest.timecode import TimeFormatError, format_seconds, parse_time

RATES = ["24", "25", "30000/1001", "30", "50", "60000/1001", "60"]


@pytest.mark.parametrize("rate", RATES)
def test_every_frame_snaps_onto_the_grid_inside_that_frame(rate: str) -> None:
    fps = Fraction(rate)
    for k in range(0, 20_000):
        t = snap(Fraction(k) / fps, fps)
        assert (t * 100).denominator == 1, (k, t)
        assert frame_shown_at(t, fps) == k, (rate, k, t)
        # and the float sent on the wire reads back as the same two-decimal value
        assert Fraction(repr(grid_float(t))) == t


@pytest.mark.parametrize("rate", RATES)
def test_a_time_inside_a_frame_snaps_to_the_nearest_frame(rate: str) -> None:
    fps = Fraction(rate)
    frame = Fraction(1) / fps
    for k in (1, 17, 1234):
        assert frame_shown_at(snap(Fraction(k) / fps + frame * Fraction(2, 5), fps), fps) == k
        assert frame_shown_at(snap(Fraction(k) / fps - frame * Fraction(2, 5), fps), fps) == k


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (3.52, Fraction(352, 100)),
        (0.1, Fraction(1, 10)),
        (7, Fraction(7)),
        ("2.675", Fraction(2675, 1000)),
        ("00:00:04.040", Fraction(404, 100)),
        ("01:02.5", Fraction(625, 10)),
        ("1:00:00,250", Fraction(14401, 4)),
        ("00:01:03", Fraction(63)),
    ],
)
def test_clock_and_seconds_parse_exactly(text: object, seconds: Fraction) -> None:
    assert parse_time(text, None) == seconds


def test_smpte_counts_frames_of_the_video() -> None:
    assert parse_time("00:00:01:12", Fraction(25)) == Fraction(1) + Fraction(12, 25)
    # non-drop-frame at 29.97: the label counts 30 frames a second, the clock runs slower
    assert parse_time("00:01:00:00", Fraction(30000, 1001)) == Fraction(1800 * 1001, 30000)
    # drop-frame: 00:01:00;02 is frame 1800 (frames 0 and 1 of minute 1 are skipped)
    assert parse_time("00:01:00;02", Fraction(30000, 1001)) == Fraction(1800 * 1001, 30000)
    assert parse_time("00:10:00;00", Fraction(30000, 1001)) == Fraction(17982 * 1001, 30000)


@pytest.mark.parametrize(
    ("value", "fps", "needle"),
    [
        ("00:00:01:12", None, "frame rate is unknown"),
        ("00:00:01:25", Fraction(25), "frame 25 does not exist"),
        ("1:75", None, "below 60"),
        ("soon", None, "cannot read"),
        (-1, None, "negative"),
        (True, None, "number of seconds"),
        (float("nan"), None, "finite"),
    ],
)
def test_unreadable_times_say_why(value: object, fps: Fraction | None, needle: str) -> None:
    with pytest.raises(TimeFormatError, match=needle) as info:
        parse_time(value, fps)
    assert info.value.fix


def test_seconds_are_formatted_without_float_rounding_traps() -> None:
    assert format_seconds(Fraction(2675, 1000), 2) == "2.68"  # float round(2.675, 2) gives 2.67
    assert format_seconds(Fraction(7, 2)) == "3.5"
    assert format_seconds(Fraction(0)) == "0"
