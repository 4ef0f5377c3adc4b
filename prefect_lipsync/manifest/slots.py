"""One script line as a slot: where it plays in the video and which part of which audio file it plays.

A slot's times are exact Fractions (seconds), parsed from the line's times with the video's frame
rate (SMPTE timecodes need it); its audio crop is checked against the probed audio length.
The timeline then moves and merges slots; each becomes one sync-3 segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from prefect_lipsync.manifest.frames import grid_floor, grid_round
from prefect_lipsync.manifest.loader import PlanLine
from prefect_lipsync.manifest.plan_context import PlanContext, seconds_text
from prefect_lipsync.manifest.timecode import TimeFormatError, is_smpte, parse_time

#: An audio crop may end this far past the probed end of its file (container durations are rounded).
AUDIO_END_SLACK = Fraction(5, 100)


@dataclass
class Slot:
    """One future segment: its lines, where it plays in the video, which audio it plays."""

    lines: list[PlanLine]
    speaker: str | None
    audio_ref: str
    audio_duration: Fraction
    start: Fraction
    end: Fraction
    a_start: Fraction
    a_end: Fraction
    tempo: Fraction | None = None  # set when an audio op speeds it up (or truncates at max tempo)

    @property
    def ids(self) -> list[str]:
        return [pl.id for pl in self.lines]

    @property
    def label(self) -> str:
        return "+".join(self.ids)

    @property
    def played(self) -> Fraction:
        """Seconds of audio this slot plays (after the tempo change)."""
        span = self.a_end - self.a_start
        return span / self.tempo if self.tempo else span

    def crop_on_grid(self) -> tuple[Fraction, Fraction]:
        """The audio crop its segment sends (audioStartTime, audioEndTime) on the 0.01 s grid.

        A sped-up slot plays a rendered file from its start; a crop under 0.01 s is widened to one step.
        """
        if self.tempo is None:
            a_start = grid_round(self.a_start)
            a_end = min(grid_round(self.a_end), grid_floor(self.audio_duration))
        else:
            a_start, a_end = Fraction(0), grid_floor(self.played)
        return a_start, max(a_end, a_start + Fraction(1, 100))


def _time(
    ctx: PlanContext, pl: PlanLine, name: str, value: object, *, audio: bool = False
) -> Fraction | None:
    fps = ctx.video.fps if ctx.video is not None else None
    try:
        if audio and is_smpte(value):
            raise TimeFormatError(
                f"{name} {value!r} is a SMPTE timecode, but an audio file has no frames",
                "give the time in the audio file in seconds or HH:MM:SS.mmm",
            )
        seconds = parse_time(value, fps)
        origin = ctx.timecode_origin
        if origin is None or audio or not is_smpte(value):
            return seconds
        label, at = origin
        if seconds < at:
            raise TimeFormatError(
                f"{name} {value!r} is before the start timecode {label} (timecode_start)",
                f"give a timecode at or after {label}, or correct timecode_start",
            )
        return seconds - at
    except TimeFormatError as exc:
        message = str(exc)
        if ctx.video is None and is_smpte(value):
            message += " (see the problem with `video`)"
        ctx.problems.append(ctx.loaded.line_problem(pl, name, message, exc.fix))
        return None


def slot_of(ctx: PlanContext, pl: PlanLine) -> Slot | None:
    """The slot of one script line, or None when its times or audio are wrong (problems added)."""
    line = pl.line
    start = _time(ctx, pl, "start", line.start)
    end = _time(ctx, pl, "end", line.end)
    a_start_raw = (
        _time(ctx, pl, "audio_start", line.audio_start, audio=True)
        if line.audio_start is not None
        else Fraction(0)
    )
    a_end_raw = (
        _time(ctx, pl, "audio_end", line.audio_end, audio=True) if line.audio_end is not None else None
    )
    ok = start is not None and end is not None and a_start_raw is not None
    ok = ok and (line.audio_end is None or a_end_raw is not None)
    if start is not None and end is not None and end <= start:
        ctx.problems.append(
            ctx.loaded.line_problem(
                pl,
                "end",
                f"end {seconds_text(end)} is not after start {seconds_text(start)}",
                "make end later than start",
            )
        )
        ok = False
    ref = ctx.loaded.resolve(line.audio)
    info, message, fix = ctx.audio_info(ref)
    if info is None:
        ctx.problems.append(ctx.loaded.line_problem(pl, "audio", message or "", fix))
        return None
    duration = ctx.audio_duration(info)
    a_start = a_start_raw if a_start_raw is not None else Fraction(0)
    a_end = a_end_raw if a_end_raw is not None else duration
    if a_start_raw is not None and a_start >= duration:
        ctx.problems.append(
            ctx.loaded.line_problem(
                pl,
                "audio_start",
                f"audio_start {seconds_text(a_start)} is at or past the end of {line.audio} ({seconds_text(duration)})",
                f"use an audio_start below {seconds_text(duration)}",
            )
        )
        ok = False
    if a_end_raw is not None:
        if a_end > duration + AUDIO_END_SLACK:
            ctx.problems.append(
                ctx.loaded.line_problem(
                    pl,
                    "audio_end",
                    f"audio_end {seconds_text(a_end)} is past the end of {line.audio} ({seconds_text(duration)})",
                    f"use an audio_end of at most {seconds_text(duration)}, or leave it out to play to the end",
                )
            )
            ok = False
        a_end = min(a_end, duration)
        if a_end <= a_start:
            ctx.problems.append(
                ctx.loaded.line_problem(
                    pl,
                    "audio_end",
                    f"audio_end {seconds_text(a_end)} is not after audio_start {seconds_text(a_start)}",
                    "make audio_end later than audio_start",
                )
            )
            ok = False
    if not ok or start is None or end is None:
        return None
    return Slot(
        lines=[pl],
        speaker=pl.speaker,
        audio_ref=ref,
        audio_duration=duration,
        start=start,
        end=end,
        a_start=a_start,
        a_end=a_end,
    )
