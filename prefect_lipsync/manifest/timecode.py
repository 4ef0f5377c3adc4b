"""Times as people write them: seconds, HH:MM:SS.mmm / MM:SS.mmm, SMPTE HH:MM:SS:FF, exactly.

Everything is a `Fraction` of a second, never a float: 0.1 + 0.2 must stay 3/10, and a frame
time at 30000/1001 fps must stay exact until it is snapped.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

_SECONDS_RE = re.compile(r"^\d+(?:\.\d+)?$")
_CLOCK_RE = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:[.,]\d+)?)$")
_SMPTE_RE = re.compile(r"^(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})(?P<sep>[:;])(?P<f>\d{2,3})$")


class TimeFormatError(ValueError):
    """A time value that cannot be read; `fix` says how to write it."""

    def __init__(self, message: str, fix: str) -> None:
        self.fix = fix
        super().__init__(message)


FORMATS_HINT = 'write seconds (3.52), "HH:MM:SS.mmm" ("00:01:03.520"), "MM:SS.mmm" or SMPTE "HH:MM:SS:FF"'


def is_smpte(value: object) -> bool:
    return isinstance(value, str) and _SMPTE_RE.match(value.strip()) is not None


def check_time_syntax(value: object) -> None:
    """Raise TimeFormatError unless `value` is a time we can read (fps is not needed for this)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Fraction | Decimal):
        raise TimeFormatError(
            f"a time must be a number of seconds or a timecode, got {value!r}", FORMATS_HINT
        )
    if isinstance(value, str) and is_smpte(value):
        _smpte_parts(value.strip())
        return
    parse_time(value, None)


def parse_time(value: object, fps: Fraction | None) -> Fraction:
    """`value` in seconds, exactly. SMPTE timecodes count frames of a video at `fps`."""
    if isinstance(value, bool):
        raise TimeFormatError(f"a time must be a number of seconds, got {value!r}", FORMATS_HINT)
    if isinstance(value, Fraction):
        result = value
    elif isinstance(value, int):
        result = Fraction(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise TimeFormatError(f"a time must be a finite number, got {value!r}", FORMATS_HINT)
        result = Fraction(repr(value))  # the decimal the user wrote, not the binary float
    elif isinstance(value, Decimal):
        result = Fraction(value)
    elif isinstance(value, str):
        result = _parse_text(value.strip(), fps)
    else:
        raise TimeFormatError(
            f"a time must be a number of seconds or a timecode, got {value!r}", FORMATS_HINT
        )
    if result < 0:
        raise TimeFormatError(f"a time cannot be negative, got {value!r}", "use 0 or a positive time")
    return result


def _parse_text(text: str, fps: Fraction | None) -> Fraction:
    if _SECONDS_RE.match(text):
        return Fraction(text)
    smpte = _SMPTE_RE.match(text)
    if smpte:
        return smpte_to_seconds(text, fps)
    clock = _CLOCK_RE.match(text)
    if clock:
        hours = int(clock["h"] or 0)
        minutes = int(clock["m"])
        seconds = Fraction(clock["s"].replace(",", "."))
        if minutes >= 60 or seconds >= 60:
            raise TimeFormatError(
                f"{text!r}: minutes and seconds must be below 60", "write e.g. 01:02:03.500 (h:mm:ss.mmm)"
            )
        return hours * 3600 + minutes * 60 + seconds
    raise TimeFormatError(f"cannot read {text!r} as a time", FORMATS_HINT)


def _smpte_parts(text: str) -> tuple[int, int, int, int, bool]:
    match = _SMPTE_RE.match(text)
    if match is None:
        raise TimeFormatError(f"{text!r} is not a SMPTE timecode", 'write "HH:MM:SS:FF"')
    h, m, s, f = (int(match[k]) for k in ("h", "m", "s", "f"))
    if m >= 60 or s >= 60:
        raise TimeFormatError(f"{text!r}: minutes and seconds must be below 60", 'write "HH:MM:SS:FF"')
    drop = match["sep"] == ";"
    if drop:
        _check_drop_label(
            text, m, s, f, 2
        )  # at 29.97 and at 59.94 (where 4 are dropped: see smpte_to_seconds)
    return h, m, s, f, drop


def _check_drop_label(text: str, m: int, s: int, f: int, dropped: int) -> None:
    """Drop-frame timecode skips the labels ;00 to ;(dropped-1) at the start of every minute but each tenth."""
    if s == 0 and m % 10 != 0 and f < dropped:
        first = f"{text[: -len(text.split(';')[-1])]}{dropped:02d}"
        raise TimeFormatError(
            f"{text!r} does not exist in drop-frame timecode: at the start of each minute that is not a "
            f"multiple of ten the labels ;00 to ;{dropped - 1:02d} are skipped",
            f"use {first!r}, the first frame of that minute (or ':' for non-drop-frame timecode)",
        )


def smpte_to_seconds(text: str, fps: Fraction | None) -> Fraction:
    """HH:MM:SS:FF (non-drop-frame) or HH:MM:SS;FF (drop-frame, 29.97/59.94) -> seconds at `fps`.

    A timecode names a frame: frame = (h*3600 + m*60 + s) * nominal_rate + FF, where the nominal
    rate is the fps rounded up (30 for 30000/1001); its time is frame / fps.
    """
    h, m, s, f, drop = _smpte_parts(text)
    if fps is None or fps <= 0:
        raise TimeFormatError(
            f"SMPTE timecode {text!r} counts video frames, but the video's frame rate is unknown",
            "write the time in seconds or HH:MM:SS.mmm, or make the video readable so its fps can be probed",
        )
    nominal = math.ceil(fps)
    if f >= nominal:
        raise TimeFormatError(
            f"{text!r}: frame {f} does not exist at {float(fps):.3f} fps (frames run 0-{nominal - 1})",
            f"use a frame number below {nominal}",
        )
    total_minutes = h * 60 + m
    frame = (h * 3600 + m * 60 + s) * nominal + f
    if drop:
        if nominal not in (30, 60) or fps.denominator == 1:
            raise TimeFormatError(
                f"{text!r}: drop-frame timecode (';') exists only at 29.97 and 59.94 fps",
                "write the frame part after ':' (non-drop-frame)",
            )
        dropped = 2 * nominal // 30
        _check_drop_label(text, m, s, f, dropped)
        frame -= dropped * (total_minutes - total_minutes // 10)
    return Fraction(frame) / fps


def format_seconds(value: Fraction | float, places: int = 3) -> str:
    """Exact decimal text of a time, trailing zeros removed: Fraction(7, 2) -> "3.5"."""
    exact = Fraction(value) if not isinstance(value, Fraction) else value
    scaled = round(exact * 10**places)
    text = str(Decimal(scaled).scaleb(-places))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
