"""Pre-flight: refuse a job before any upload or submit when what it would pay for is broken.

Per planned job: the source decodes (key frames and all audio, cheaply) and has the frame rate
and length the plan assumed; every audio file decodes and is not silent where its segment plays;
a face is visible in each segment (a warning only: drawn characters fool the detector); the
estimated cost fits the budget. A verdict of `fail` means: stop this job.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.quality.analysis import parse_filter_log, parse_named_volumes
from prefect_lipsync.quality.face import count_faces, face_finder
from prefect_lipsync.quality.frames import sample_frames
from prefect_lipsync.quality.models import CheckResult, QualityReport, QualityThresholds
from prefect_lipsync.quality.payload import (
    LocalMedia,
    PlannedSegment,
    planned_segments,
    resolve_media,
    video_ref,
)
from prefect_lipsync.quality.source_analysis import (
    FACE_DETECT_WIDTH,
    MAX_FACE_SAMPLES,
    SourceAnalysis,
    detection_frame,
    face_sample_times,
)
from prefect_lipsync.quality.streams import StreamFacts, probe_streams


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:300].rstrip(".")


def _source_checks(
    source: Path,
    expected_fps: Fraction | None,
    expected_duration: float | None,
    t: QualityThresholds,
    timeout: float,
    analysis: SourceAnalysis | None = None,
) -> tuple[list[CheckResult], StreamFacts | None]:
    try:
        facts = analysis.facts if analysis is not None else probe_streams(source, timeout=timeout)
    except MediaError as exc:
        return [
            CheckResult(
                name="source_decodes",
                status="fail",
                threshold="decodes without errors",
                message=f"The source cannot be read: {_short(exc)}.",
            )
        ], None
    if facts.video_count == 0:
        return [
            CheckResult(
                name="source_decodes",
                status="fail",
                threshold="a video stream",
                message=f"The source {source.name} has no video stream.",
            )
        ], facts
    # Key frames only (unless asked otherwise): a truncated or corrupt file still shows errors or
    # ends early, at a fraction of a full decode's cost. All audio is decoded: it is cheap and its
    # end time shows where the file really stops.
    skip = [] if t.preflight_full_decode else ["-skip_frame", "nokey"]
    args = [
        "-loglevel",
        "level+info",
        *skip,
        "-i",
        str(source),
        "-map",
        "0:v:0",
        "-map",
        "0:a?",
        "-f",
        "null",
        "-",
    ]
    try:
        found = (
            analysis.findings
            if analysis is not None
            else parse_filter_log(
                run_ffmpeg(args, timeout=timeout, path=source).stderr.decode("utf-8", "replace")
            )
        )
    except MediaError as exc:
        return [
            CheckResult(
                name="source_decodes",
                status="fail",
                threshold="decodes without errors",
                message=f"The source does not decode: {_short(exc)}.",
            )
        ], facts
    # A shared analysis decodes every frame, so its end is where the video really stops.
    measurable_end = facts.audio_count > 0 or t.preflight_full_decode or analysis is not None
    short = (
        measurable_end
        and found.decoded_until is not None
        and found.decoded_until < facts.duration - max(0.5, t.duration_tolerance_s)
    )
    if found.errors or short:
        where = f" and stops at {found.decoded_until:.2f} s of {facts.duration:.2f} s" if short else ""
        checks = [
            CheckResult(
                name="source_decodes",
                status="fail",
                value=len(found.errors),
                threshold="decodes without errors",
                message=f"The source prints {len(found.errors)} decode error(s){where}.",
            )
        ]
    else:
        checks = [
            CheckResult(
                name="source_decodes",
                status="pass",
                value=0,
                threshold="decodes without errors",
                message=f"The source {source.name} decodes without errors.",
            )
        ]
    if expected_fps is not None:
        same = facts.fps == expected_fps
        checks.append(
            CheckResult(
                name="source_frame_rate",
                status="pass" if same else "fail",
                value=str(facts.fps),
                threshold=f"= {expected_fps}",
                message="The source has the frame rate the plan assumed."
                if same
                else f"The plan assumed {expected_fps} fps but the source runs at {facts.fps} fps.",
            )
        )
    if expected_duration is not None:
        tolerance = max(t.duration_tolerance_frames * facts.frame_s, t.duration_tolerance_s)
        diff = facts.duration - expected_duration
        checks.append(
            CheckResult(
                name="source_duration",
                status="pass" if abs(diff) <= tolerance + 1e-6 else "fail",
                value=round(facts.duration, 3),
                threshold=f"{expected_duration:.3f} ± {tolerance:.3f} s",
                message=f"The plan assumed {expected_duration:.3f} s; the source lasts {facts.duration:.3f} s.",
            )
        )
    return checks, facts


def _audio_checks(
    segments: list[PlannedSegment],
    local_media: LocalMedia | None,
    t: QualityThresholds,
    notes: list[str],
    timeout: float,
) -> list[CheckResult]:
    by_file: dict[Path, list[PlannedSegment]] = {}
    for seg in segments:
        path = resolve_media(seg.audio_ref, local_media)
        if path is None:
            notes.append(f"The audio of {seg.label} is not a local file and was not checked.")
            continue
        by_file.setdefault(path, []).append(seg)
    broken: list[str] = []
    silent: list[str] = []
    for path, segs in by_file.items():
        if not path.is_file():
            broken.append(f"{path.name} does not exist")
            continue
        # One run per file: each segment's crop goes through its own named volumedetect.
        chains = []
        for seg in segs:
            end = f":end={seg.audio_start + seg.audio_length():.3f}"
            chains.append(
                f"[s{seg.index}]atrim=start={seg.audio_start:.3f}{end},volumedetect@seg{seg.index}[v{seg.index}]"
            )
        split = f"[0:a:0]asplit={len(segs)}" + "".join(f"[s{s.index}]" for s in segs)
        concat = "".join(f"[v{s.index}]" for s in segs) + f"concat=n={len(segs)}:v=0:a=1[out]"
        args = [
            "-loglevel",
            "level+info",
            "-i",
            str(path),
            "-filter_complex",
            ";".join([split, *chains, concat]),
            "-map",
            "[out]",
            "-f",
            "null",
            "-",
        ]
        try:
            stderr = run_ffmpeg(args, timeout=timeout, path=path).stderr.decode("utf-8", "replace")
        except MediaError as exc:
            broken.append(f"{path.name}: {_short(exc)}")
            continue
        found = parse_filter_log(stderr)
        if found.errors:
            broken.append(f"{path.name} prints {len(found.errors)} decode error(s)")
        volumes = parse_named_volumes(stderr)
        for seg in segs:
            level = volumes.get(f"seg{seg.index}")
            if level is None or level <= t.silent_max_volume_db:
                what = "no audio" if level is None else f"max {level:g} dB"
                silent.append(
                    f"{seg.label} from {path.name} {seg.audio_start:.2f}-"
                    f"{seg.audio_start + seg.audio_length():.2f} s ({what})"
                )
    checks = [
        CheckResult(
            name="audio_decodes",
            status="fail" if broken else "pass",
            value=len(broken),
            threshold="every audio file decodes",
            message="Broken audio: " + "; ".join(broken) + "."
            if broken
            else f"All {len(by_file)} audio file(s) decode without errors.",
        )
    ]
    checks.append(
        CheckResult(
            name="segment_audio_level",
            status="fail" if silent else "pass",
            value=len(silent),
            threshold=f"max_volume > {t.silent_max_volume_db:g} dB in every segment",
            message="Silent where it should speak: " + "; ".join(silent) + "."
            if silent
            else f"Every one of the {len(segments)} segment(s) has audible audio.",
        )
    )
    return checks


def _face_check(
    source: Path,
    facts: StreamFacts,
    segments: list[PlannedSegment],
    t: QualityThresholds,
    timeout: float,
    analysis: SourceAnalysis | None,
) -> CheckResult | None:
    if not (facts.width and facts.height and facts.fps):
        return None
    labels = [s.label for s in segments] or ["the video"]
    times, owners = face_sample_times(segments, facts, t.face_samples_per_segment)
    shared = analysis.frames_at(times) if analysis is not None else None
    if shared is not None:
        frames = [detection_frame(f)[0] for f in shared]
    else:
        frames = sample_frames(
            source,
            times,
            size=(facts.width, facts.height),
            fps=facts.fps,
            width=min(facts.width, FACE_DETECT_WIDTH),
            clock=facts.clock,
            timeout=timeout,
        )
    finder = face_finder()
    seen = {owners[i] for i, frame in enumerate(frames) if count_faces(frame, finder) > 0}
    missing = [labels[i] for i in range(min(len(labels), MAX_FACE_SAMPLES)) if i not in seen]
    return CheckResult(
        name="face_visible",
        status="warn" if missing else "pass",
        value=len(seen),
        threshold="a frontal face in every segment (warning only)",
        message="No frontal face found in "
        + ", ".join(missing[:5])
        + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        + f" ({finder.name}; drawn characters fool the detector)."
        if missing
        else f"A face is visible in all {len(seen)} sampled stretch(es) ({finder.name}).",
    )


def _budget_check(
    seconds: float, price_per_second: float, budget_usd: float | None, already_spent_usd: float
) -> CheckResult:
    estimate = seconds * price_per_second
    if budget_usd is None:
        return CheckResult(
            name="budget",
            status="pass",
            value=round(estimate, 4),
            threshold="no budget set",
            message=f"Estimated cost {estimate:.2f} USD for {seconds:.2f} s.",
        )
    total = already_spent_usd + estimate
    over = total > budget_usd + 1e-9
    return CheckResult(
        name="budget",
        status="fail" if over else "pass",
        value=round(estimate, 4),
        threshold=f"spent + estimate <= {budget_usd:.2f} USD",
        message=f"Estimated {estimate:.2f} USD on top of {already_spent_usd:.2f} USD spent "
        f"{'exceeds' if over else 'fits'} the budget of {budget_usd:.2f} USD.",
    )


def preflight(
    request_payload: Mapping[str, Any],
    *,
    source: Path | None = None,
    local_media: LocalMedia | None = None,
    expected_fps: Fraction | None = None,
    expected_duration: float | None = None,
    thresholds: QualityThresholds | None = None,
    price_per_second: float | None = None,
    budget_usd: float | None = None,
    already_spent_usd: float = 0.0,
    source_analysis: SourceAnalysis | None = None,
    timeout: float = 300.0,
) -> QualityReport:
    """Check one planned job before paying for it; verdict `fail` means do not upload or submit.

    `source` defaults to the payload's `inputs.video` (a file:// URI or a key of `local_media`).
    The cost estimate bills the whole source duration (the conservative reading of the pricing).
    `source_analysis` (made once per run by `analyze_source`) replaces the decode of the source.
    """
    t = thresholds or QualityThresholds()
    notes: list[str] = []
    ref = video_ref(request_payload)
    if source is None and ref is not None:
        source = resolve_media(ref, local_media)
    if source is None:
        check = CheckResult(
            name="source_decodes",
            status="fail",
            threshold="a local source video",
            message="The request names no local source video to check.",
        )
        return QualityReport.from_checks([check], output=str(ref), source=None, notes=notes)
    source = Path(source)
    checks, facts = _source_checks(source, expected_fps, expected_duration, t, timeout, source_analysis)
    duration = facts.duration if facts else (expected_duration or 0.0)
    segments = planned_segments(request_payload, duration)
    if segments:
        checks.extend(_audio_checks(segments, local_media, t, notes, timeout))
    else:
        notes.append("No audio to check: the request speaks text (TTS) or has no audio.")
    if facts is not None and facts.video_count > 0 and checks[0].status == "pass":
        face = _face_check(source, facts, segments, t, timeout, source_analysis)
        if face is not None:
            checks.append(face)
    if price_per_second is not None:
        checks.append(_budget_check(duration, price_per_second, budget_usd, already_spent_usd))
    else:
        notes.append("Cost not estimated: no price per second was given.")
    return QualityReport.from_checks(checks, output=str(source), source=str(source), notes=notes)
