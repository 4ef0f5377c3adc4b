"""Checks of the output's audio: not silent, speech where segments are planned, loudness, and
where the submitted audio sits in it (A/V offset)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.quality.analysis import PCM_RATE, Findings
from prefect_lipsync.quality.avsync import Signal, decode_pcm16k, measure_offset
from prefect_lipsync.quality.models import CheckResult, QualityThresholds, TimeRange
from prefect_lipsync.quality.payload import LocalMedia, PlannedSegment, resolve_media
from prefect_lipsync.quality.ranges import ranges_text


def audio_level_check(found: Findings, t: QualityThresholds) -> CheckResult:
    level = found.max_volume_db
    silent = level is None or level <= t.silent_max_volume_db
    return CheckResult(
        name="audio_level",
        status="fail" if silent else "pass",
        value=level,
        threshold=f"max_volume > {t.silent_max_volume_db:g} dB",
        message="The audio is silent." if silent else f"The audio peaks at {level:g} dB.",
    )


#: The submitted audio counts as speaking where it is this many dB above the silence floor: a tail
#: hovering at the floor is not speech the output lost.
SPEAKING_ABOVE_FLOOR_DB = 10.0
#: Edges of an output silence not compared with the submitted audio (codec smear, word onsets).
SILENCE_EDGE_S = 0.05
#: A silence of the output is a finding when the submitted audio speaks for longer than this inside it.
LOST_SPEECH_MIN_S = 0.1
_FRAME_S = 0.01


def speaking_seconds(signal: Signal, start_s: float, end_s: float, floor_db: float) -> float:
    """Seconds of `signal` (16 kHz mono) between `start_s` and `end_s` whose 10 ms frames peak above
    `floor_db + SPEAKING_ABOVE_FLOOR_DB`: how long the submitted audio speaks there."""
    lo = max(0, round(start_s * PCM_RATE))
    hi = min(signal.size, round(end_s * PCM_RATE))
    if hi <= lo:
        return 0.0
    frame = round(_FRAME_S * PCM_RATE)
    chunk = np.abs(signal[lo:hi])
    usable = chunk.size - chunk.size % frame
    peaks = chunk[:usable].reshape(-1, frame).max(axis=1) if usable else np.zeros(0, dtype=np.float32)
    if chunk.size > usable:
        peaks = np.append(peaks, chunk[usable:].max())
    level = 10 ** ((floor_db + SPEAKING_ABOVE_FLOOR_DB) / 20)
    return float(np.count_nonzero(peaks > level)) * _FRAME_S


def speech_check(
    found: Findings,
    segments: list[PlannedSegment],
    duration: float,
    t: QualityThresholds,
    audio_seconds: Mapping[str, float],
    submitted: Mapping[str, Signal] | None = None,
    notes: list[str] | None = None,
) -> CheckResult:
    """Silence of the output inside a segment, judged against what was submitted for it.

    A silence is a finding only where the submitted audio speaks (a pause of the dub itself is not the
    output's fault); without a local copy of the submitted audio, every silence is.
    """
    gaps: list[TimeRange] = []
    excused: list[TimeRange] = []
    for seg in segments:
        # Only where submitted audio plays: a segment longer than its audio may end in silence.
        length = seg.audio_length()
        if seg.audio_ref in audio_seconds:
            length = min(length, max(0.0, audio_seconds[seg.audio_ref] - seg.audio_start))
        start, end = seg.start, seg.start + length
        dub = (submitted or {}).get(seg.audio_ref)
        for silence in found.silence:
            lo, hi = max(start, silence.start), min(end, silence.end_or(duration))
            if hi - lo <= t.silence_min_s:
                continue
            place = TimeRange(start=round(lo, 3), end=round(hi, 3))
            if dub is not None:
                # The same stretch of the submitted audio (it plays 1:1 from audio_start at the segment's start).
                offset = seg.audio_start - seg.start
                lost = speaking_seconds(
                    dub, lo + SILENCE_EDGE_S + offset, hi - SILENCE_EDGE_S + offset, t.silence_noise_db
                )
                if lost <= LOST_SPEECH_MIN_S:
                    excused.append(place)
                    continue
            gaps.append(place)
    if excused and notes is not None:
        notes.append(
            f"Silence at {ranges_text(excused)} is in the submitted audio too (a pause of the dub): not a finding."
        )
    longest = max((g.end_or(duration) - g.start for g in gaps), default=0.0)
    return CheckResult(
        name="speech_in_segments",
        status="fail" if gaps else "pass",
        value=round(longest, 3),
        threshold=f"no silence > {t.silence_min_s:g} s inside a segment where the submitted audio speaks",
        message=f"Silence inside planned segments at {ranges_text(gaps)}, where the submitted audio speaks."
        if gaps
        else f"No silence longer than {t.silence_min_s:g} s inside the {len(segments)} planned segment(s)"
        + (" but the dub's own pauses." if excused else "."),
        at=gaps,
    )


def loudness_checks(found: Findings, t: QualityThresholds) -> list[CheckResult]:
    lufs, peak = found.integrated_lufs, found.true_peak_dbtp
    off = lufs is None or abs(lufs - t.loudness_target_lufs) > t.loudness_tolerance_lu
    hot = peak is not None and peak > t.true_peak_max_dbtp
    return [
        CheckResult(
            name="loudness",
            status="warn" if off else "pass",
            value=lufs,
            threshold=f"{t.loudness_target_lufs:g} ± {t.loudness_tolerance_lu:g} LUFS",
            message=f"Integrated loudness is {lufs} LUFS (target {t.loudness_target_lufs:g} LUFS).",
        ),
        CheckResult(
            name="true_peak",
            status="warn" if hot else "pass",
            value=peak,
            threshold=f"<= {t.true_peak_max_dbtp:g} dBTP",
            message=f"True peak is {peak} dBTP.",
        ),
    ]


def submitted_audio(
    segments: list[PlannedSegment], local_media: LocalMedia | None, notes: list[str], timeout: float
) -> dict[str, Signal]:
    """Each local audio file the segments use, as 16 kHz mono, by its reference in the request."""
    decoded: dict[str, Signal] = {}
    for ref in dict.fromkeys(seg.audio_ref for seg in segments):
        path = resolve_media(ref, local_media)
        if path is None or not path.is_file():
            notes.append(f"A/V offset not measured where {ref[:80]} plays: it is not a local file.")
            continue
        try:
            decoded[ref] = decode_pcm16k(path, timeout=timeout)
        except MediaError as exc:
            notes.append(
                f"A/V offset not measured where {path.name} plays: it does not decode ({exc.message})."
            )
    return decoded


def av_offset_check(
    output_pcm: Signal,
    segments: list[PlannedSegment],
    submitted: Mapping[str, Signal],
    frame_s: float,
    t: QualityThresholds,
    notes: list[str],
) -> CheckResult | None:
    measured: list[tuple[PlannedSegment, float]] = []
    for seg in segments:
        if seg.audio_ref not in submitted:
            continue
        start = round(seg.audio_start * PCM_RATE)
        reference = submitted[seg.audio_ref][start : start + round(seg.audio_length() * PCM_RATE)]
        measure = measure_offset(reference, output_pcm, planned_start_s=seg.start, search_s=t.av_search_s)
        if measure is None or measure.correlation < t.av_min_correlation:
            notes.append(
                f"A/V offset of {seg.label} not measured: the submitted audio is not found in the output."
            )
            continue
        measured.append((seg, measure.offset_s))
    limit = t.av_offset_max_frames * frame_s
    threshold = f"|offset| <= {limit * 1000:.0f} ms ({t.av_offset_max_frames:g} frame)"
    if not measured:
        if not segments:
            return None
        return CheckResult(
            name="av_offset",
            status="warn",
            threshold=threshold,
            message="The submitted audio could not be found in the output's audio of any segment.",
        )
    worst_seg, worst = max(measured, key=lambda m: abs(m[1]))
    bad = [TimeRange(start=s.start, end=s.end) for s, off in measured if abs(off) > limit + 1e-9]
    return CheckResult(
        name="av_offset",
        status="fail" if bad else "pass",
        value=round(worst, 4),
        threshold=threshold,
        message=f"The output's audio is {worst * 1000:+.0f} ms off the submitted audio at worst "
        f"({worst_seg.label}; {len(measured)} segment(s) measured).",
        at=bad,
    )
