"""The planner: a loaded manifest and probe results in, one sync-3 request per language out.

Pure: it reads no file and starts no process (subtitle files were read by the loader, media by
the probe; content hashes come from `hash_fn`). Times are exact `Fraction`s until the very end,
where each is snapped to a frame and then to the 0.01 s grid (see `frames`).

This module puts a language's request together; the thinking lives in one module per concern:
- `plan_context`: the probes, the problems found so far, one job's draft;
- `slots`: a script line as a slot (times, audio crop), checked against the probes;
- `timeline`: clamp, overlaps, merges, fitting audio to slots, frames;
- `segments`: a slot as a sync-3 segment (and the audio op it may need);
- `speaker_targets`: which face moves (point, box, per-frame box track, auto) and the face box;
- `output_names`: the output file names;
- `final_mix`: the music-and-effects stem the delivered audio is mixed over, and the layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from prefect_lipsync.manifest.errors import ManifestError
from prefect_lipsync.manifest.final_mix import final_mix_of, plan_stem, source_audio_warning
from prefect_lipsync.manifest.loader import LoadedManifest
from prefect_lipsync.manifest.output_names import output_name, output_stem
from prefect_lipsync.manifest.plan_context import (
    HashFn,
    JobDraft,
    PlanContext,
    default_audio_ops_dir,
    media_uri,
    name_hash,
    seconds_text,
)
from prefect_lipsync.manifest.plan_models import (
    DEFAULT_PRICE_PER_SECOND,
    DroppedLine,
    Plan,
    PlannedJob,
)
from prefect_lipsync.manifest.segments import segment_of
from prefect_lipsync.manifest.slots import AUDIO_END_SLACK, Slot
from prefect_lipsync.manifest.speaker_targets import detection_for_slots, detection_whole, face_box_for
from prefect_lipsync.manifest.timeline import TRIM_FRAMES, plan_timeline
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.runware.models import Sync3Request, Sync3ValidationError

__all__ = [
    "AUDIO_END_SLACK",
    "TRIM_FRAMES",
    "HashFn",
    "default_audio_ops_dir",
    "media_uri",
    "output_stem",
    "plan_manifest",
]


def _check_track_length(ctx: PlanContext, job: JobDraft, audio: Fraction, mode: str) -> None:
    assert ctx.video is not None
    video = Fraction(repr(ctx.video.duration))
    tolerance = max(Fraction(2) / ctx.video.fps if ctx.video.fps else Fraction(0), Fraction(1, 10))
    if abs(audio - video) > tolerance:
        job.warnings.append(
            f"the dub track is {seconds_text(audio)} and the video {seconds_text(video)}: sync_mode {mode} "
            "decides what happens"
        )


def _note_subtitles(ctx: PlanContext, job: JobDraft) -> None:
    """Cues of the language's subtitle file that are not lines as written: dropped lines and warnings."""
    where = job.spec.subtitles or "subtitles"
    for note in ctx.loaded.subtitle_notes.get(job.code, []):
        job.warnings.append(note.located(where))
        if note.cue_id is not None and note.action in ("left out", "dropped"):
            place = f"{where}:{note.line}" if note.line is not None else where
            job.dropped.append(
                DroppedLine(line_id=note.cue_id, reason=f"{note.action}: {note.reason} ({place})")
            )


def _job_speaker(ctx: PlanContext, job: JobDraft, slots: list[Slot] | None) -> str | None:
    """The one speaker a job targets, when it has one (for its face box)."""
    if slots is not None:
        used = list(dict.fromkeys(s.speaker for s in slots if s.speaker is not None))
        return used[0] if len(used) == 1 else None
    speakers = ctx.manifest.speakers or {}
    name = job.spec.speaker
    if name is None:
        return next(iter(speakers)) if len(speakers) == 1 else None
    return next((n for n in speakers if n.casefold() == name.casefold()), name)


def _plan_language(ctx: PlanContext, job: JobDraft) -> PlannedJob | None:
    spec = job.spec
    mode = spec.sync_mode or ctx.manifest.defaults.sync_mode
    settings: dict[str, Any] = {"syncMode": mode}
    payload: dict[str, Any] = {"inputs": {"video": media_uri(ctx.video_ref)}, "settings": settings}
    if ctx.number_results != 1:
        payload["numberResults"] = ctx.number_results
    payload.update(ctx.request_options)  # the run's delivery options: format, quality, ttl, safety, cost
    segment_lines: list[list[str]] = []
    slots: list[Slot] | None = None
    before = len(ctx.problems)
    if spec.kind in ("lines", "subtitles"):
        _note_subtitles(ctx, job)
        slots = plan_timeline(ctx, job)
        if slots is None or ctx.video is None:
            return None
        if not slots:
            ctx.problems.append(
                ctx.loaded.problem(
                    ("languages", job.code),
                    "no line is left to lip-sync (every line was dropped: " + "; ".join(job.warnings) + ")",
                    "check the lines' times against the video's length and min_segment",
                )
            )
            return None
        settings["segments"] = [segment_of(ctx, job, slot) for slot in slots]
        segment_lines = [slot.ids for slot in slots]
        detection = detection_for_slots(ctx, job, slots)
    elif spec.kind == "audio":
        assert spec.audio is not None
        ref = ctx.loaded.resolve(spec.audio)
        info, message, fix = ctx.audio_info(ref)
        if info is None:
            ctx.problems.append(ctx.loaded.problem(("languages", job.code, "audio"), message or "", fix))
            return None
        payload["inputs"]["audio"] = media_uri(ref)
        if ctx.video is not None:
            _check_track_length(ctx, job, ctx.audio_duration(info), mode)
        detection = detection_whole(ctx, job)
    else:
        assert spec.speech is not None
        payload["speech"] = {"text": spec.speech.text, "voice": spec.speech.voice}
        detection = detection_whole(ctx, job)
    if detection is not None:
        settings["activeSpeakerDetection"] = detection
    if ctx.video is None or len(ctx.problems) > before:
        return None
    clock = ctx.video.clock
    if clock is not None and clock.variable and ctx.video_is_vfr():
        job.warnings.append(
            f"the video has a variable frame rate ({clock.count} frames over {seconds_text(clock.end)}, nominally "
            f"{float(clock.nominal):.5g} fps): its length and segment times come from its frames' timestamps"
        )
    elif ctx.video_is_vfr():
        job.warnings.append(
            "the video has a variable frame rate but its frames' timestamps could not be read: frame times use "
            "its nominal rate"
        )
    try:
        request = Sync3Request.model_validate(payload)
    except Sync3ValidationError as exc:
        for p in exc.problems:
            ctx.problems.append(
                ctx.loaded.problem(
                    ("languages", job.code),
                    f"the planned request is invalid at {p.path}: {p.message}",
                    "report this as a bug in the planner, with the manifest",
                )
            )
        return None
    return PlannedJob(
        language=job.code,
        kind=spec.kind,
        request=request,
        warnings=job.warnings,
        dropped_lines=job.dropped,
        audio_ops=job.ops,
        segment_lines=segment_lines,
        output_name=output_name(
            ctx.video_ref, ctx.manifest.name, job.code, suffix=f".{request.output_format.lower()}"
        ),
        video_duration=ctx.video.duration,
        face_box=face_box_for(ctx.manifest, _job_speaker(ctx, job, slots)),
    )


def plan_manifest(
    loaded: LoadedManifest,
    media: Mapping[str, MediaInfo],
    *,
    media_errors: Mapping[str, MediaError] | None = None,
    price_per_second: float = DEFAULT_PRICE_PER_SECOND,
    number_results: int = 1,
    hash_fn: HashFn | None = None,
    audio_ops_dir: str | Path | None = None,
    request_options: Mapping[str, Any] | None = None,
) -> Plan:
    """Plan one sync-3 request per language of `loaded`; raise ManifestError with every problem.

    `media` maps each resolved reference (`loaded.media_refs()`) to its probe; `media_errors`
    the ones that failed to probe. `hash_fn(path)` gives a file's content hash for the audio ops'
    keys (load_and_plan passes a SHA-256 of the file; without it the key uses the path).
    `audio_ops_dir` is where the ops will be rendered (default: the cache dir's audio-ops).
    `request_options` are wire fields every request gets (outputFormat, outputQuality, ttl, safety,
    includeCost: a run's settings); the output names take the container's extension.
    """
    if not 1 <= number_results <= 20:
        raise ValueError("number_results must be 1-20")
    ctx = PlanContext(
        loaded,
        media,
        media_errors or {},
        hash_fn or name_hash,
        Path(audio_ops_dir) if audio_ops_dir is not None else default_audio_ops_dir(),
        number_results,
        request_options,
    )
    # The delivered audio: the stem each dub is mixed over, or what the output will have without one.
    stem = plan_stem(ctx)
    audio_note = source_audio_warning(ctx) if ctx.manifest.music_and_effects is None else None
    jobs: list[PlannedJob] = []
    for code, spec in ctx.manifest.languages.items():
        if code in loaded.broken:
            continue
        planned = _plan_language(ctx, JobDraft(code=code, spec=spec))
        if planned is not None:
            if stem is not None:
                planned.final_mix = final_mix_of(stem, planned.request, planned.video_duration)
                planned.warnings.extend(stem.warnings)
            if audio_note is not None:
                planned.warnings.append(audio_note)
            jobs.append(planned)
    if ctx.problems:
        raise ManifestError(ctx.problems)
    seconds = sum(job.video_duration * job.request.number_results for job in jobs)
    return Plan(
        jobs=jobs,
        estimated_seconds=round(seconds, 3),
        estimated_cost_usd=round(seconds * price_per_second, 4),
        price_per_second=price_per_second,
    )
