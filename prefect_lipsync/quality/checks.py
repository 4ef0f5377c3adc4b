"""The checks on a lip-synced output, before anyone publishes it: `check_output` runs them all.

Cost: two ffprobe runs (one with a shared `SourceAnalysis`), ONE decode of the output through
every analysis filter (plus its audio as 16 kHz PCM, the frames the SSIM checks compare and the
mouth crop of every frame), one decode of each submitted audio file. Without a shared analysis
of the source, the source is decoded in the same run as the output for its frames, and once more
only when the output shows black or frozen stretches (to see whether the source has them too);
with one, the source is decoded again only for frozen stretches, once per run.
The checks themselves live by subject: container_checks, audio_checks, picture_checks,
lipsync_check, safety.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.quality.analysis import PCM_RATE, Findings, FrameGrab, MouthCrop, analyze
from prefect_lipsync.quality.audio_checks import (
    audio_level_check,
    av_offset_check,
    loudness_checks,
    speech_check,
    submitted_audio,
)
from prefect_lipsync.quality.container_checks import container_checks, decode_check
from prefect_lipsync.quality.frames import sample_frames
from prefect_lipsync.quality.lipsync_check import lipsync_offset_check, measure_segments
from prefect_lipsync.quality.models import CheckResult, LipsyncSegment, QualityReport, QualityThresholds
from prefect_lipsync.quality.payload import LocalMedia, PlannedSegment, planned_segments, safety_mode
from prefect_lipsync.quality.picture_checks import region_checks, stretch_check
from prefect_lipsync.quality.safety import QUARANTINE_DIR, quarantine, safety_check
from prefect_lipsync.quality.source_analysis import SourceAnalysis, check_sample_times
from prefect_lipsync.quality.ssim import Box
from prefect_lipsync.quality.streams import StreamFacts, probe_streams

__all__ = ["QUARANTINE_DIR", "check_output", "quarantine"]


@dataclass
class _Run:
    """What one call of `check_output` knows once both files are probed."""

    output: Path
    source: Path
    t: QualityThresholds
    src: StreamFacts
    out: StreamFacts
    segments: list[PlannedSegment]
    face_box: Box | None
    mouth_box: Box | None
    lipsync_expected: bool
    measure_lipsync: bool
    analysis: SourceAnalysis | None
    timeout: float
    notes: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lipsync: list[LipsyncSegment] = field(default_factory=list)

    @property
    def has_audio(self) -> bool:
        return self.out.audio_count > 0

    @property
    def has_video(self) -> bool:
        return self.out.video_count > 0

    @property
    def same_picture(self) -> bool:
        """Both files have a known, equal picture size and the source a frame rate: frames compare."""
        src, out = self.src, self.out
        return (
            self.has_video
            and src.fps is not None
            and src.width is not None
            and src.height is not None
            and (out.width, out.height) == (src.width, src.height)
        )

    @property
    def region(self) -> bool:
        return self.face_box is not None and self.same_picture

    @property
    def lipsync_measured(self) -> bool:
        return self.measure_lipsync and self.mouth_box is not None and self.has_video and self.has_audio


def _unreadable(exc: MediaError) -> CheckResult:
    message = str(exc).replace("\n", " ")[:300].rstrip(".")
    return CheckResult(
        name="container",
        status="fail",
        threshold="a file ffprobe can read",
        message=f"ffprobe cannot read the output: {message}.",
    )


def _inside(box: Box | None, facts: StreamFacts) -> Box | None:
    """`box` clipped to the picture (a plan's box may reach past it); None when nothing is left."""
    if box is None or not (facts.width and facts.height):
        return None
    x1, y1 = max(0, box[0]), max(0, box[1])
    x2, y2 = min(facts.width, box[2]), min(facts.height, box[3])
    return (x1, y1, x2, y2) if x2 - x1 >= 2 and y2 - y1 >= 2 else None


def _decode_output(run: _Run, folder: Path) -> Findings:
    """The one analysis pass of the output, keeping what the picture checks need."""
    src, t = run.src, run.t
    shared = run.analysis.frames_at(run.times) if run.analysis is not None and run.region else None
    grab = None
    if run.region and src.fps and src.width and src.height:
        grab = FrameGrab(
            times=tuple(run.times),
            fps=src.fps,
            size=(src.width, src.height),
            reference=None if shared is not None else run.source,
            folder=folder,
            clock=run.out.clock,
            reference_clock=src.clock,
        )
    crop = _inside(run.mouth_box, run.out) if run.lipsync_measured else None
    mouth = MouthCrop.of(crop, folder) if crop is not None else None
    pcm = run.has_audio and (bool(run.segments) or mouth is not None)
    found = analyze(
        run.output,
        video=run.has_video,
        audio=run.has_audio,
        pcm=pcm,
        thresholds=t,
        grab=grab,
        mouth=mouth,
        timeout=run.timeout,
    )
    if grab is not None and grab.reference is not None and found.errors:
        # Errors may be the source's (decoded in the same run): decode the output alone to know.
        frames, reference_frames, crops = found.frames, found.reference_frames, found.mouth_crops
        found = analyze(
            run.output, video=True, audio=run.has_audio, pcm=pcm, thresholds=t, timeout=run.timeout
        )
        found.frames, found.reference_frames, found.mouth_crops = frames, reference_frames, crops
    if shared is not None:
        found.reference_frames = shared
    if grab is not None and src.fps and src.width and src.height:
        size = (src.width, src.height)
        if len(found.frames) != len(run.times):
            # A variable frame rate can select more or fewer frames than asked: seek to each instead.
            found.frames = sample_frames(
                run.output, run.times, size=size, fps=src.fps, clock=run.out.clock, timeout=run.timeout
            )
        if len(found.reference_frames) != len(run.times):
            found.reference_frames = sample_frames(
                run.source, run.times, size=size, fps=src.fps, clock=src.clock, timeout=run.timeout
            )
    return found


def _audio_results(run: _Run, found: Findings, local_media: LocalMedia | None) -> list[CheckResult]:
    if not run.has_audio:
        return []
    segments, t = run.segments, run.t
    submitted = submitted_audio(segments, local_media, run.notes, run.timeout) if segments else {}
    checks = [audio_level_check(found, t)]
    if segments:
        seconds = {ref: pcm.size / PCM_RATE for ref, pcm in submitted.items()}
        checks.append(speech_check(found, segments, run.out.duration, t, seconds, submitted, run.notes))
    else:
        run.notes.append(
            "Speech-in-segments and A/V offset did not run: no request with audio segments was given."
        )
    checks.extend(loudness_checks(found, t))
    if segments and found.pcm16k is not None:
        av = av_offset_check(found.pcm16k, segments, submitted, run.src.frame_s, t, run.notes)
        if av is not None:
            checks.append(av)
    return checks


def _source_stretches(run: _Run, found: Findings) -> Findings:
    """The source's own black and frozen stretches, decoding it only when the output has some."""
    if run.analysis is not None:
        frozen = run.analysis.frozen(run.t, run.timeout) if found.freeze else []
        return Findings(black=run.analysis.findings.black, freeze=frozen)
    if found.black or found.freeze:
        return analyze(run.source, video=True, audio=False, thresholds=run.t, timeout=run.timeout)
    return Findings()


def _picture_results(run: _Run, found: Findings) -> list[CheckResult]:
    if not run.has_video:
        return []
    out, src, t = run.out, run.src, run.t
    source_found = _source_stretches(run, found)
    checks = [
        stretch_check(
            "black_frames", "black", found.black, source_found.black, out.duration, src.duration, t
        ),
        # A black stretch is also a frozen one: report it once, as black.
        stretch_check(
            "frozen_frames",
            "frozen",
            found.freeze,
            source_found.freeze + found.black,
            out.duration,
            src.duration,
            t,
        ),
    ]
    if run.region and run.face_box is not None:
        checks.extend(
            region_checks(
                run.times,
                found.reference_frames,
                found.frames,
                run.segments,
                run.face_box,
                run.mouth_box,
                run.lipsync_expected,
                t,
            )
        )
    elif run.face_box is not None:
        run.notes.append("Face-region checks did not run: the output's size differs from the source's.")
    else:
        run.notes.append("Face-region checks did not run: no face box was given.")
    return checks


def _lipsync_results(run: _Run, found: Findings) -> list[CheckResult]:
    if not run.measure_lipsync:
        return []
    if not run.lipsync_measured or found.mouth_crops is None:
        if run.mouth_box is None:
            what = "no mouth box"
        elif not (run.has_video and run.has_audio):
            what = "the output lacks video or audio"
        else:
            what = f"the mouth box {run.mouth_box} is outside the picture"
        run.notes.append(f"Lip sync (lipsync_offset) was not measured: {what}.")
        return []
    fps = run.out.fps or run.src.fps
    if fps is None:
        run.notes.append("Lip sync (lipsync_offset) was not measured: the frame rate is unknown.")
        return []
    run.lipsync, notes = measure_segments(
        found, run.segments, fps=fps, duration=min(run.out.duration, run.src.duration), t=run.t
    )
    run.notes.extend(notes)
    check = lipsync_offset_check(run.lipsync, run.t, lipsync_expected=run.lipsync_expected)
    return [check] if check is not None else []


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
    measure_lipsync: bool = False,
    source_analysis: SourceAnalysis | None = None,
    face_note: str | None = None,
    timeout: float = 600.0,
) -> QualityReport:
    """Check `output` against `source` (and the request that made it); never raises for a bad output.

    A MediaError is raised only when the SOURCE cannot be probed. `lipsync_expected=False` (the
    emulator's output) turns an unchanged mouth, or lips off the audio, into a warning.
    `measure_lipsync` adds the `lipsync_offset` check (it needs `mouth_box`); `source_analysis`,
    made once per run by `analyze_source`, saves decoding the source again. A flagged output is
    moved aside with `quarantine()` unless `quarantine_flagged` is False. Callers with a planned
    job use `check_planned_output`, which chooses the face box and runs every check.
    """
    t = thresholds or QualityThresholds()
    output, source = Path(output), Path(source)
    src = source_analysis.facts if source_analysis is not None else probe_streams(source, timeout=timeout)
    notes: list[str] = []
    lipsync: list[LipsyncSegment] = []

    def report(checks: list[CheckResult]) -> QualityReport:
        done = QualityReport.from_checks(checks, output=str(output), source=str(source), notes=notes)
        done.face_source, done.lipsync = face_note, lipsync
        done.face_box, done.mouth_box = face_box, mouth_box
        if quarantine_flagged and (safety := done.check("content_safety")) and safety.status == "fail":
            quarantine(output, done)
        return done

    safety = safety_check(nsfw_flag, safety_mode(request_payload or {}), t)
    try:
        out = probe_streams(output, timeout=timeout)
    except MediaError as exc:
        notes.append("No other check ran: the file cannot be read.")
        return report([_unreadable(exc), safety])
    run = _Run(
        output=output,
        source=source,
        t=t,
        src=src,
        out=out,
        segments=planned_segments(request_payload, src.duration) if request_payload else [],
        face_box=face_box,
        mouth_box=mouth_box,
        lipsync_expected=lipsync_expected,
        measure_lipsync=measure_lipsync,
        analysis=source_analysis,
        timeout=timeout,
        notes=notes,
    )
    checks = container_checks(out, src, t)
    if not run.has_video:
        notes.append("Picture and decode checks did not run: the output has no video stream.")
    if not run.has_audio:
        notes.append("Audio checks did not run: the output has no audio stream.")
    if run.region:
        run.times = check_sample_times(run.segments, src, t, out.duration)
    with tempfile.TemporaryDirectory(prefix="lipsync-check-") as folder:
        found = _decode_output(run, Path(folder))
    checks.insert(1, decode_check(found, out, t))
    checks += _audio_results(run, found, local_media)
    checks += _picture_results(run, found)
    checks += _lipsync_results(run, found)
    lipsync = run.lipsync
    checks.append(safety)
    return report(checks)
