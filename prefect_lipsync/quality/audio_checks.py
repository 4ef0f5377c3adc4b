"""Checks of the output's audio: not silent, speech where segments are planned, loudness, and
where the submitted audio sits in it (A/V offset)."""

from __future__ import annotations

from collections.abc import Mapping

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


def speech_check(
    found: Findings,
    segments: list[PlannedSegment],
    duration: float,
    t: QualityThresholds,
    audio_seconds: Mapping[str, float],
) -> CheckResult:
    gaps: list[TimeRange] = []
    for seg in segments:
        # Only where submitted audio plays: a segment longer than its audio may end in silence.
        length = seg.audio_length()
        if seg.audio_ref in audio_seconds:
            length = min(length, max(0.0, audio_seconds[seg.audio_ref] - seg.audio_start))
        start, end = seg.start, seg.start + length
        for silence in found.silence:
            lo, hi = max(start, silence.start), min(end, silence.end_or(duration))
            if hi - lo > t.silence_min_s:
                gaps.append(TimeRange(start=round(lo, 3), end=round(hi, 3)))
    longest = max((g.end_or(duration) - g.start for g in gaps), default=0.0)
    return CheckResult(
        name="speech_in_segments",
        status="fail" if gaps else "pass",
        value=round(longest, 3),
        threshold=f"no silence > {t.silence_min_s:g} s inside a segment",
        message=f"Silence inside planned segments at {ranges_text(gaps)}."
        if gaps
        else f"No silence longer than {t.silence_min_s:g} s inside the {len(segments)} planned segment(s).",
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
