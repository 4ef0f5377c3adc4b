"""The checks on a lip-synced output, before anyone publishes it.

Cost: two ffprobe runs, ONE decode of the output through every analysis filter (plus its audio
as 16 kHz PCM), one decode of each submitted audio file, and only when the output shows black or
frozen stretches one decode of the source to see whether it has them too. With a face box, a
few frames are sampled from both files by seeking.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.quality.analysis import PCM_RATE, Findings, FrameGrab, analyze
from prefect_lipsync.quality.avsync import Signal, decode_pcm16k, measure_offset
from prefect_lipsync.quality.frames import Frame, sample_frames
from prefect_lipsync.quality.models import CheckResult, QualityReport, QualityThresholds, TimeRange
from prefect_lipsync.quality.payload import (
    LocalMedia,
    PlannedSegment,
    planned_segments,
    resolve_media,
    safety_mode,
)
from prefect_lipsync.quality.ssim import Box, ssim_inside, ssim_outside
from prefect_lipsync.quality.streams import StreamFacts, probe_streams

QUARANTINE_DIR = "quarantine"


def _ranges_text(ranges: list[TimeRange], limit: int = 3) -> str:
    shown = ", ".join(str(r) for r in ranges[:limit])
    return shown + (f" and {len(ranges) - limit} more" if len(ranges) > limit else "")


def _uncovered(found: TimeRange, reference: list[TimeRange], file_end: float, ref_end: float) -> float:
    """Seconds of `found` that no range of `reference` covers."""
    start, end = found.start, found.end_or(file_end)
    covered = sum(r.overlap(start, end, file_end=ref_end) for r in reference)
    return max(0.0, (end - start) - covered)


# --------------------------------------------------------------------------- container and geometry


def _container_checks(out: StreamFacts, src: StreamFacts, t: QualityThresholds) -> list[CheckResult]:
    checks = [
        CheckResult(
            name="container",
            status="pass",
            value=round(out.duration, 3),
            message="ffprobe reads the container.",
        )
    ]
    ok_streams = out.video_count == 1 and out.audio_count == 1
    checks.append(
        CheckResult(
            name="streams",
            status="pass" if ok_streams else "fail",
            value=f"{out.video_count} video, {out.audio_count} audio",
            threshold="1 video, 1 audio",
            message="One video and one audio stream."
            if ok_streams
            else f"Expected one video and one audio stream, found {out.video_count} video and "
            f"{out.audio_count} audio.",
        )
    )
    if out.video_count == 0:
        return checks
    tolerance = max(t.duration_tolerance_frames * src.frame_s, t.duration_tolerance_s)
    diff = out.duration - src.duration
    checks.append(
        CheckResult(
            name="duration",
            status="pass" if abs(diff) <= tolerance + 1e-6 else "fail",
            value=round(diff, 3),
            threshold=f"|output - source| <= {tolerance:.3f} s",
            message=f"The output lasts {out.duration:.3f} s, the source {src.duration:.3f} s "
            f"({diff:+.3f} s).",
        )
    )
    same_size = (out.width, out.height) == (src.width, src.height)
    checks.append(
        CheckResult(
            name="geometry",
            status="pass" if same_size else "fail",
            value=f"{out.width}x{out.height}",
            threshold=f"{src.width}x{src.height}",
            message="Same picture size as the source."
            if same_size
            else f"The output is {out.width}x{out.height}, the source {src.width}x{src.height}.",
        )
    )
    same_rate = out.fps == src.fps
    checks.append(
        CheckResult(
            name="frame_rate",
            status="pass" if same_rate else "warn",
            value=str(out.fps),
            threshold=f"= {src.fps}",
            message="Same frame rate as the source."
            if same_rate
            else f"The output runs at {out.fps} fps, the source at {src.fps} fps (the service re-encodes).",
        )
    )
    return checks


def _decode_check(found: Findings, out: StreamFacts, t: QualityThresholds) -> CheckResult:
    tolerance = max(t.duration_tolerance_frames * out.frame_s, t.duration_tolerance_s, 0.5)
    short = found.decoded_until is not None and found.decoded_until < out.duration - tolerance
    if found.errors or short:
        # "[h264 @ 0x55...] [error] Invalid NAL unit size." -> "Invalid NAL unit size"
        first = re.sub(r"^(\[[^\]]*\]\s*)+", "", found.errors[0]).rstrip(".") if found.errors else ""
        where = f"; decoding stopped at {found.decoded_until:.2f} s of {out.duration:.2f} s" if short else ""
        return CheckResult(
            name="decode",
            status="fail",
            value=len(found.errors),
            threshold="no decode errors",
            message=f"Decoding printed {len(found.errors)} error(s){where}{': ' + first if first else ''}.",
        )
    return CheckResult(
        name="decode",
        status="pass",
        value=0,
        threshold="no decode errors",
        message="The whole file decodes without errors.",
    )


# --------------------------------------------------------------------------- audio


def _audio_level_check(found: Findings, t: QualityThresholds) -> CheckResult:
    level = found.max_volume_db
    silent = level is None or level <= t.silent_max_volume_db
    return CheckResult(
        name="audio_level",
        status="fail" if silent else "pass",
        value=level,
        threshold=f"max_volume > {t.silent_max_volume_db:g} dB",
        message="The audio is silent." if silent else f"The audio peaks at {level:g} dB.",
    )


def _speech_check(
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
        message=f"Silence inside planned segments at {_ranges_text(gaps)}."
        if gaps
        else f"No silence longer than {t.silence_min_s:g} s inside the {len(segments)} planned segment(s).",
        at=gaps,
    )


def _loudness_checks(found: Findings, t: QualityThresholds) -> list[CheckResult]:
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


def _submitted_audio(
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


def _av_offset_check(
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


# --------------------------------------------------------------------------- picture


def _stretch_check(
    name: str,
    what: str,
    found: list[TimeRange],
    explained: list[TimeRange],
    out_end: float,
    src_end: float,
    t: QualityThresholds,
) -> CheckResult:
    """Fail on stretches of `found` that `explained` (the source's own, ...) does not cover."""
    new = [r for r in found if _uncovered(r, explained, out_end, src_end) > t.source_overlap_s]
    total = sum(r.end_or(out_end) - r.start for r in new)
    return CheckResult(
        name=name,
        status="fail" if new else "pass",
        value=round(total, 3),
        threshold=f"no {what} stretch the source lacks",
        message=f"{what.capitalize()} at {_ranges_text(new)}, which the source does not have."
        if new
        else f"No {what} stretch that the source lacks.",
        at=new,
    )


def _sample_times(segments: list[PlannedSegment], duration: float, limit: int) -> list[float]:
    if segments:
        chosen = (
            segments
            if len(segments) <= limit
            else [segments[round(i * (len(segments) - 1) / (limit - 1))] for i in range(limit)]
            if limit > 1
            else segments[:1]
        )
        return [(s.start + s.end) / 2 for s in chosen]
    return [duration * f for f in (0.25, 0.5, 0.75)]


def _region_checks(
    times: list[float],
    src_frames: list[Frame],
    out_frames: list[Frame],
    segments: list[PlannedSegment],
    face_box: Box,
    mouth_box: Box | None,
    lipsync_expected: bool,
    t: QualityThresholds,
) -> list[CheckResult]:
    pairs = list(zip(times, src_frames, out_frames, strict=False))
    if not pairs:
        return []
    outside = [(at, ssim_outside(a, b, face_box)) for at, a, b in pairs]
    low = [
        TimeRange(start=round(at, 3), end=round(at, 3)) for at, v in outside if v < t.outside_face_min_ssim
    ]
    least = min(v for _, v in outside)
    checks = [
        CheckResult(
            name="outside_face_unchanged",
            status="fail" if low else "pass",
            value=round(least, 4),
            threshold=f"SSIM outside the face >= {t.outside_face_min_ssim:g}",
            message=f"Outside the face the picture matches the source (lowest SSIM {least:.3f} over "
            f"{len(outside)} frames)."
            if not low
            else f"The picture outside the face differs from the source (SSIM {least:.3f}) at {_ranges_text(low)}.",
            at=low,
        )
    ]
    if mouth_box is not None and segments:
        mouth = [ssim_inside(a, b, mouth_box) for _, a, b in pairs]
        mean = sum(mouth) / len(mouth)
        changed = mean < t.mouth_changed_max_ssim
        status = "pass" if changed else ("fail" if lipsync_expected else "warn")
        why = "" if lipsync_expected else " (expected: this output did not come from a lip-sync model)"
        checks.append(
            CheckResult(
                name="mouth_changed",
                status=status,
                value=round(mean, 4),
                threshold=f"mean mouth SSIM < {t.mouth_changed_max_ssim:g}",
                message=f"The mouth region {'changed' if changed else 'did not change'} inside the segments "
                f"(mean SSIM {mean:.3f}){why}.",
            )
        )
    return checks


# --------------------------------------------------------------------------- safety


def _safety_check(nsfw_flag: bool | None, mode: str, t: QualityThresholds) -> CheckResult:
    if nsfw_flag:
        return CheckResult(
            name="content_safety",
            status="fail",
            value=True,
            threshold="NSFWContent is false",
            message=f"The service flagged the output as NSFW (safety mode {mode}); it must not be published.",
        )
    if nsfw_flag is False:
        return CheckResult(
            name="content_safety",
            status="pass",
            value=False,
            threshold="NSFWContent is false",
            message=f"The service did not flag the output (safety mode {mode}).",
        )
    unchecked = mode == "none"
    status = "warn" if (unchecked and t.require_content_check) or (not unchecked) else "pass"
    message = (
        "The service was not asked to check content."
        if unchecked
        else f"Content checking was asked for (mode {mode}) but the result carries no NSFWContent flag."
    )
    return CheckResult(
        name="content_safety", status=status, value=None, threshold="NSFWContent is false", message=message
    )


# --------------------------------------------------------------------------- entry points


def check_output(
    output: Path,
    *,
    source: Path,
    request_payload: Mapping[str, Any] | None = None,
    local_media: LocalMedia | None = None,
    thresholds: QualityThresholds | None = None,
    face_box: Box | None = None,
    mouth_box: Box | None = None,
    nsfw_flag: bool | None = None,
    lipsync_expected: bool = True,
    quarantine_flagged: bool = True,
    timeout: float = 600.0,
) -> QualityReport:
    """Check `output` against `source` (and the request that made it); never raises for a bad output.

    A MediaError is raised only when the SOURCE cannot be probed. `lipsync_expected=False` (the
    emulator's output) turns an unchanged mouth into a warning. A flagged output is moved aside
    with `quarantine()` unless `quarantine_flagged` is False.
    """
    t = thresholds or QualityThresholds()
    output, source = Path(output), Path(source)
    notes: list[str] = []
    src = probe_streams(source, timeout=timeout)

    def report(checks: list[CheckResult]) -> QualityReport:
        done = QualityReport.from_checks(checks, output=str(output), source=str(source), notes=notes)
        if quarantine_flagged and (safety := done.check("content_safety")) and safety.status == "fail":
            quarantine(output, done)
        return done

    safety = _safety_check(nsfw_flag, safety_mode(request_payload or {}), t)
    try:
        out = probe_streams(output, timeout=timeout)
    except MediaError as exc:
        notes.append("No other check ran: the file cannot be read.")
        message = str(exc).replace("\n", " ")[:300].rstrip(".")
        return report(
            [
                CheckResult(
                    name="container",
                    status="fail",
                    threshold="a file ffprobe can read",
                    message=f"ffprobe cannot read the output: {message}.",
                ),
                safety,
            ]
        )
    checks = _container_checks(out, src, t)
    if out.video_count == 0:
        notes.append("Picture and decode checks did not run: the output has no video stream.")
    has_audio = out.audio_count > 0
    if not has_audio:
        notes.append("Audio checks did not run: the output has no audio stream.")
    segments = planned_segments(request_payload, src.duration) if request_payload else []
    region = (
        face_box is not None
        and out.video_count > 0
        and src.fps is not None
        and src.width is not None
        and src.height is not None
        and (out.width, out.height) == (src.width, src.height)
    )
    times = _sample_times(segments, min(out.duration, src.duration), t.ssim_samples_max) if region else []
    with tempfile.TemporaryDirectory(prefix="lipsync-check-") as folder:
        grab = None
        if region and src.fps and src.width and src.height:
            grab = FrameGrab(
                times=tuple(times),
                fps=src.fps,
                size=(src.width, src.height),
                reference=source,
                folder=Path(folder),
            )
        found = analyze(
            output,
            video=out.video_count > 0,
            audio=has_audio,
            pcm=has_audio and bool(segments),
            thresholds=t,
            grab=grab,
            timeout=timeout,
        )
        if grab is not None and found.errors:
            # Errors may be the source's (decoded in the same run): decode the output alone to know.
            frames, reference_frames = found.frames, found.reference_frames
            found = analyze(
                output,
                video=True,
                audio=has_audio,
                pcm=has_audio and bool(segments),
                thresholds=t,
                timeout=timeout,
            )
            found.frames, found.reference_frames = frames, reference_frames
    if (
        region
        and src.fps
        and src.width
        and src.height
        and (len(found.frames) != len(times) or len(found.reference_frames) != len(times))
    ):
        # A variable frame rate can select more or fewer frames than asked: seek to each instead.
        size = (src.width, src.height)
        found.frames = sample_frames(output, times, size=size, fps=src.fps, timeout=timeout)
        found.reference_frames = sample_frames(source, times, size=size, fps=src.fps, timeout=timeout)
    checks.insert(1, _decode_check(found, out, t))

    if has_audio:
        submitted = _submitted_audio(segments, local_media, notes, timeout) if segments else {}
        checks.append(_audio_level_check(found, t))
        if segments:
            seconds = {ref: pcm.size / PCM_RATE for ref, pcm in submitted.items()}
            checks.append(_speech_check(found, segments, out.duration, t, seconds))
        else:
            notes.append(
                "Speech-in-segments and A/V offset did not run: no request with audio segments was given."
            )
        checks.extend(_loudness_checks(found, t))
        if segments and found.pcm16k is not None:
            av = _av_offset_check(found.pcm16k, segments, submitted, src.frame_s, t, notes)
            if av is not None:
                checks.append(av)

    if out.video_count > 0:
        source_found = Findings()
        if found.black or found.freeze:
            # Only now is the source worth a decode: are these stretches in it too?
            source_found = analyze(source, video=True, audio=False, thresholds=t, timeout=timeout)
        checks.append(
            _stretch_check(
                "black_frames", "black", found.black, source_found.black, out.duration, src.duration, t
            )
        )
        # A black stretch is also a frozen one: report it once, as black.
        checks.append(
            _stretch_check(
                "frozen_frames",
                "frozen",
                found.freeze,
                source_found.freeze + found.black,
                out.duration,
                src.duration,
                t,
            )
        )
        if region and face_box is not None:
            checks.extend(
                _region_checks(
                    times,
                    found.reference_frames,
                    found.frames,
                    segments,
                    face_box,
                    mouth_box,
                    lipsync_expected,
                    t,
                )
            )
        elif face_box is not None:
            notes.append("Face-region checks did not run: the output's size differs from the source's.")
        else:
            notes.append("Face-region checks did not run: no face box was given.")
    checks.append(safety)
    return report(checks)


def quarantine(output: Path, report: QualityReport) -> Path:
    """Move `output` into a `quarantine/` directory beside it, with the report that says why.

    Returns the new path and records it in `report.quarantined_to`. The delivery path is left empty.
    """
    output = Path(output)
    folder = output.parent / QUARANTINE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / output.name
    counter = 1
    while target.exists():
        target = folder / f"{output.stem}.{counter}{output.suffix}"
        counter += 1
    os.replace(output, target)
    report.quarantined_to = str(target)
    reasons = [c.message for c in report.checks if c.status == "fail"]
    body = {"reasons": reasons, "report": report.model_dump(mode="json")}
    write_text_atomic(target.with_name(target.name + ".quarantine.json"), json.dumps(body, indent=2))
    return target
