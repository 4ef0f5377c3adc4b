"""A language's lines on the video's timeline: clamp, overlaps, merges, fitting the audio, frames.

The steps, in order (each a function of the slots, warnings and drops going to the job draft):
clamp to the video; refuse overlaps of one speaker, and of two speakers by more than
TRIM_FRAMES (trim smaller ones); merge close neighbours of one speaker and one audio file when
their audio is contiguous; fit each audio to its slot (shrink the slot, extend it into the
following gap, speed the audio up to `max_tempo`, or truncate with a warning); widen or drop
slots shorter than `min_segment`; snap to frames and the 0.01 s grid.

The video's end and its frames' times come from the stream's timestamps (`VideoFacts.clock`), so a
clip with dropped frames or a changing rate is planned on its true length.
"""

from __future__ import annotations

import math
from fractions import Fraction

from prefect_lipsync.manifest.frames import GRID, boundary_on_grid, grid_floor
from prefect_lipsync.manifest.loader import is_url
from prefect_lipsync.manifest.plan_context import JobDraft, PlanContext, seconds_text
from prefect_lipsync.manifest.slots import Slot, slot_of
from prefect_lipsync.media.frame_clock import FrameClock

#: Two speakers may overlap by this many frames; the earlier line is trimmed.
TRIM_FRAMES = 2
#: Tempo factors are written with four decimals, rounded up so the sped-up audio fits its slot.
_TEMPO_STEPS = 10_000


def plan_timeline(ctx: PlanContext, job: JobDraft) -> list[Slot] | None:
    """The snapped slots of one language's lines; None when a problem stops it (problems added)."""
    lines = ctx.loaded.lines.get(job.code, [])
    slots = [s for s in (slot_of(ctx, pl) for pl in lines) if s is not None]
    video = ctx.video
    if video is None or video.fps is None or video.clock is None:
        return None  # problems are reported; with no frame rate nothing more can be checked
    complete = len(slots) == len(lines)  # else problems are reported: check the rest all the same
    fps, clock, video_end = video.fps, video.clock, video.clock.end
    unused_timecode = ctx.source_timecode_unused()
    kept: list[Slot] = []
    for slot in slots:
        if slot.start >= video_end and unused_timecode is not None:
            # Most likely a script timed in the source's own timecode: refuse it rather than drop every line.
            pl = slot.lines[0]
            ctx.problems.append(
                ctx.loaded.line_problem(
                    pl,
                    "start",
                    f"start {pl.line.start!r} ({seconds_text(slot.start)}) is after the video's end "
                    f"({seconds_text(video_end)}); the video's own timecode starts at {unused_timecode}",
                    "add `timecode_start: source` at the top of the manifest to count SMPTE times from the "
                    f"video's timecode ({unused_timecode}), or give times from the video's first frame",
                )
            )
            complete = False
            continue
        if slot.start >= video_end:
            job.drop(
                slot,
                f"starts at {seconds_text(slot.start)}, after the video's end ({seconds_text(video_end)})",
            )
            continue
        if slot.end > video_end:
            job.warnings.append(
                f"line {slot.label} ends at {seconds_text(slot.end)}, after the video's end: cut to {seconds_text(video_end)}"
            )
            slot.end = video_end
        kept.append(slot)
    kept.sort(key=lambda s: (s.start, s.end, s.lines[0].position))
    if not resolve_overlaps(ctx, job, kept, fps) or not complete:
        return None
    defaults = ctx.manifest.defaults
    merged = merge_neighbours(kept, Fraction(repr(defaults.merge_gap)), Fraction(repr(defaults.min_segment)))
    fit_audio(job, merged, video_end, Fraction(repr(defaults.max_tempo)))
    widened = widen_or_drop_short(job, merged, video_end, Fraction(repr(defaults.min_segment)))
    return snap_to_frames(job, widened, clock)


def resolve_overlaps(ctx: PlanContext, job: JobDraft, slots: list[Slot], fps: Fraction) -> bool:
    """Refuse overlaps of one speaker, and of two by more than TRIM_FRAMES; trim the rest."""
    ok = True
    limit = Fraction(TRIM_FRAMES) / fps
    open_slots: list[Slot] = []
    for slot in slots:
        open_slots = [o for o in open_slots if o.end > slot.start]
        for other in open_slots:
            overlap = min(other.end, slot.end) - slot.start
            pl = slot.lines[0]
            if other.speaker == slot.speaker:
                who = f"speaker {slot.speaker}" if slot.speaker else "the one speaker"
                ctx.problems.append(
                    ctx.loaded.line_problem(
                        pl,
                        "start",
                        f"overlaps line {other.label} ({seconds_text(other.start)}-{seconds_text(other.end)}) of {who} by "
                        f"{seconds_text(overlap)}: one speaker says one line at a time",
                        f"start line {pl.id} at {seconds_text(other.end)} or later, or join the two lines",
                    )
                )
                ok = False
            elif overlap > limit or slot.end <= other.end:
                frames = math.ceil(overlap * fps)
                ctx.problems.append(
                    ctx.loaded.line_problem(
                        pl,
                        "start",
                        f"line {pl.id} (speaker {slot.speaker}) overlaps line {other.label} (speaker "
                        f"{other.speaker}) by {seconds_text(overlap)} ({frames} frames); one audio plays at a time",
                        f"move line {pl.id} or line {other.label} so that they overlap by at most "
                        f"{TRIM_FRAMES} frames, or put each speaker in a separate job",
                    )
                )
                ok = False
            else:
                job.warnings.append(
                    f"line {other.label} (speaker {other.speaker}) overlapped line {pl.id} (speaker "
                    f"{slot.speaker}) by {math.ceil(overlap * fps)} frame(s): trimmed its end to {seconds_text(slot.start)}"
                )
                other.end = slot.start
        open_slots.append(slot)
    return ok


def merge_neighbours(slots: list[Slot], merge_gap: Fraction, min_segment: Fraction) -> list[Slot]:
    """Join neighbours of one speaker and one audio file whose audio is contiguous and close."""
    out: list[Slot] = []
    for slot in slots:
        prev = out[-1] if out else None
        if prev is not None and prev.speaker == slot.speaker and prev.audio_ref == slot.audio_ref:
            short = min(prev.end - prev.start, slot.end - slot.start) < min_segment
            limit = max(merge_gap, min_segment) if short else merge_gap
            gap = slot.start - prev.end
            audio_gap = slot.a_start - prev.a_end
            if 0 <= gap < limit and 0 <= audio_gap <= limit:
                prev.lines.extend(slot.lines)
                prev.end = slot.end
                prev.a_end = slot.a_end
                continue
        out.append(slot)
    return out


def fit_audio(job: JobDraft, slots: list[Slot], video_end: Fraction, max_tempo: Fraction) -> None:
    """Make each slot as long as its audio: shrink, extend into the next gap, speed up, or truncate."""
    for i, slot in enumerate(slots):
        next_start = slots[i + 1].start if i + 1 < len(slots) else video_end
        length = slot.end - slot.start
        audio = slot.a_end - slot.a_start
        room = next_start - slot.start
        if audio <= room:
            slot.end = slot.start + audio  # shorter audio shrinks the slot; longer takes the gap
            continue
        local = not is_url(slot.audio_ref)
        needed = audio / room
        tempo = Fraction(math.ceil(needed * _TEMPO_STEPS), _TEMPO_STEPS)
        if local and tempo <= max_tempo:
            slot.tempo = tempo
            slot.end = slot.start + slot.played
            job.warnings.append(
                f"line {slot.label}: audio of {seconds_text(audio)} sped up {float(tempo):.4g}x to fit its "
                f"{seconds_text(room)} slot"
            )
            continue
        use_tempo = max_tempo if local and max_tempo > 1 else None
        kept = room * use_tempo if use_tempo else room
        lost = audio - kept
        slot.tempo = use_tempo
        slot.a_end = slot.a_start + kept
        slot.end = slot.start + room
        how = f" even at {float(max_tempo):.4g}x" if use_tempo else ""
        job.warnings.append(
            f"speech truncated: line {slot.label} needs {seconds_text(audio)} of audio but has {seconds_text(room)} up to the "
            f"{'next line' if i + 1 < len(slots) else 'end of the video'}{how}; its last {seconds_text(lost)} "
            f"are cut (slot was {seconds_text(length)})"
        )


def widen_or_drop_short(
    job: JobDraft, slots: list[Slot], video_end: Fraction, min_segment: Fraction
) -> list[Slot]:
    """Widen slots shorter than min_segment into free time around them, or drop them."""
    out: list[Slot] = []
    for i, slot in enumerate(slots):
        length = slot.end - slot.start
        if length >= min_segment:
            out.append(slot)
            continue
        prev_end = out[-1].end if out else Fraction(0)
        next_start = slots[i + 1].start if i + 1 < len(slots) else video_end
        need = min_segment - length
        after = min(need, next_start - slot.end)
        before = min(need - after, slot.start - prev_end)
        if after + before < need:
            job.drop(
                slot,
                f"{seconds_text(length)} long, shorter than min_segment ({seconds_text(min_segment)}), with no free time "
                "around it to widen into",
            )
            continue
        slot.end += after
        slot.start -= before
        job.warnings.append(
            f"line {slot.label} ({seconds_text(length)}) is shorter than min_segment: widened to "
            f"{seconds_text(slot.start)}-{seconds_text(slot.end)}; its audio stays {seconds_text(slot.played)}"
        )
        out.append(slot)
    return out


def _first_end_after_audio(slot: Slot, start: Fraction, clock: FrameClock) -> int:
    """The first boundary whose grid time is at or after where the slot's audio ends, started at `start`."""
    a_start, a_end = slot.crop_on_grid()
    needed = start + a_end - a_start  # on the 0.01 s grid, as start and the crop are
    k = clock.boundary_at_or_after(needed - GRID)
    while k < clock.count and boundary_on_grid(k, clock) < needed:
        k += 1
    return k


def snap_to_frames(job: JobDraft, slots: list[Slot], clock: FrameClock) -> list[Slot]:
    """Snap every slot to frames and the 0.01 s grid, keeping the order.

    A start goes to its nearest frame. An end goes to its nearest frame, or later: to the first frame
    at or after where the slot's audio ends once its start is snapped, as far as the next slot (or the
    video's end) allows, so rounding never cuts the dub's tail.
    """
    frames = clock.count
    starts = [clock.nearest_boundary(s.start) for s in slots]
    out: list[Slot] = []
    for i, slot in enumerate(slots):
        k_start = starts[i]
        limit = starts[i + 1] if i + 1 < len(slots) else frames
        start = boundary_on_grid(k_start, clock)
        k_end = min(max(clock.nearest_boundary(slot.end), _first_end_after_audio(slot, start, clock)), limit)
        if k_end <= k_start:
            if k_start + 1 > limit:
                job.drop(slot, f"shorter than one frame at {seconds_text(slot.start)} once snapped to frames")
                continue
            k_end = k_start + 1
        slot.start = start
        # The video's last frame ends at clock.end; a grid step past it would fall outside the video.
        slot.end = boundary_on_grid(k_end, clock) if k_end < frames else grid_floor(clock.end)
        out.append(slot)
    return out
