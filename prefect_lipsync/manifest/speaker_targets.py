"""Which face sync-3 moves: a speaker's point or box, a per-frame box track, or automatic detection.

With no `speakers` in the manifest, sync-3 detects the active speaker. One speaker in a job gets
its own target (a point, a box repeated on every frame, or auto). Lines of several speakers in
one job need a box for each, laid out as a per-frame track (sync-3 takes one point, or boxes per
frame). `face_box_for` is the box the quality checks compare outside of, for one job.

Points and boxes are on the picture as people see it: a phone video stored 1920x1080 with a 90 degree
display matrix is 1080x1920 here, as ffmpeg decodes it and as the checks compare it.
"""

from __future__ import annotations

from typing import Any

from prefect_lipsync.manifest.errors import ManifestProblem
from prefect_lipsync.manifest.plan_context import JobDraft, PlanContext
from prefect_lipsync.manifest.schema import Manifest, SpeakerTarget
from prefect_lipsync.manifest.slots import Slot

Box = tuple[int, int, int, int]


def face_box_for(manifest: Manifest, speaker: str | None) -> Box | None:
    """The face box of a job: its speaker's box, else the manifest's only speaker box, else None."""
    speakers = manifest.speakers or {}
    target = speakers.get(speaker) if speaker is not None else None
    if target is not None and target.box is not None:
        return _int_box(target.box)
    boxes = [t.box for t in speakers.values() if t.box is not None]
    return _int_box(boxes[0]) if len(boxes) == 1 else None


def _int_box(box: list[float]) -> Box:
    x1, y1, x2, y2 = (int(v) for v in box)
    return x1, y1, x2, y2


def _target_problem(ctx: PlanContext, name: str, target: SpeakerTarget) -> ManifestProblem | None:
    """Why a speaker's point or box does not fit the video, or None."""
    video = ctx.video
    if video is None or name in ctx.loaded.broken_speakers:
        return None
    if target.point is not None:
        p = target.point
        if p.x > video.width or p.y > video.height:
            return _speaker_problem(
                ctx,
                name,
                "point",
                f"point ({p.x:g}, {p.y:g}) is outside the {video.size_text}",
                f"give x in 0-{video.width} and y in 0-{video.height}",
            )
        if video.frames is not None and p.frame >= video.frames:
            return _speaker_problem(
                ctx,
                name,
                "point",
                f"frame {p.frame} does not exist: the video has {video.frames} frames",
                f"use a frame from 0 to {video.frames - 1}",
            )
    if target.box is not None:
        _, _, x2, y2 = target.box
        if x2 > video.width or y2 > video.height:
            return _speaker_problem(
                ctx,
                name,
                "box",
                f"box {target.box} reaches outside the {video.size_text}",
                f"keep x2 <= {video.width} and y2 <= {video.height}",
            )
    return None


def _speaker_problem(ctx: PlanContext, name: str, key: str, message: str, fix: str) -> ManifestProblem:
    problem = ctx.loaded.problem(("speakers", name, key), f"speaker {name}: {message}", fix)
    return problem.model_copy(update={"language": None})


def _detection_one(ctx: PlanContext, name: str) -> dict[str, Any] | None:
    speakers = ctx.manifest.speakers or {}
    target = speakers[name]
    problem = _target_problem(ctx, name, target)
    if problem is not None:
        ctx.problems.append(problem)
        return None
    if target.point is not None:
        return {"coordinates": [target.point.x, target.point.y], "frameNumber": target.point.frame}
    if target.box is not None:
        frames = ctx.video.frames if ctx.video is not None and ctx.video.frames else 0
        return {"boundingBoxes": [list(target.box)] * frames}
    return {"autoDetect": True}


def detection_whole(ctx: PlanContext, job: JobDraft) -> dict[str, Any] | None:
    """activeSpeakerDetection for one track over the whole video (the language's `speaker`)."""
    speakers = ctx.manifest.speakers
    if not speakers:
        return {"autoDetect": True}
    name = job.spec.speaker
    if name is None and len(speakers) == 1:
        name = next(iter(speakers))
    if name is None:
        job.warnings.append(
            f"{len(speakers)} speakers are defined but one track plays over the whole video: sync-3 "
            "detects the active speaker (set `speaker:` on the language to target one)"
        )
        return {"autoDetect": True}
    name = next((n for n in speakers if n.casefold() == name.casefold()), name)
    return _detection_one(ctx, name)


def detection_for_slots(ctx: PlanContext, job: JobDraft, slots: list[Slot]) -> dict[str, Any] | None:
    """activeSpeakerDetection for segmented lines: one speaker's target, or a per-frame box track."""
    speakers = ctx.manifest.speakers
    if not speakers:
        return {"autoDetect": True}
    used = list(dict.fromkeys(s.speaker for s in slots if s.speaker is not None))
    if len(used) == 1:
        return _detection_one(ctx, used[0])
    targets = {name: speakers[name] for name in used}
    if all(t.kind == "auto" for t in targets.values()):
        return {"autoDetect": True}
    not_boxes = [
        name for name, t in targets.items() if t.box is None and name not in ctx.loaded.broken_speakers
    ]
    if not_boxes:
        ctx.problems.append(
            ctx.loaded.problem(
                ("speakers",),
                f"language {job.code} has lines of {len(used)} speakers ({', '.join(used)}); sync-3 takes one "
                "point, or a per-frame box track, so every one of them needs a box "
                f"({', '.join(not_boxes)} has none)",
                f"give {', '.join(not_boxes)} a box: [x1, y1, x2, y2], or make every speaker auto: true",
                language=job.code,
            )
        )
        return None
    bad = [p for p in (_target_problem(ctx, n, t) for n, t in targets.items()) if p is not None]
    if bad or any(name in ctx.loaded.broken_speakers for name in targets):
        ctx.problems.extend(bad)
        return None
    assert ctx.video is not None and ctx.video.clock is not None
    clock = ctx.video.clock  # frame k of the track is the k-th frame decoded (its timestamp when VFR)
    frames = clock.count
    track: list[list[float] | None] = [None] * frames
    for slot in slots:
        assert slot.speaker is not None
        box = list(speakers[slot.speaker].box or [])
        first = clock.shown_at(slot.start)
        last = frames if slot.end >= clock.end else clock.shown_at(slot.end)
        for k in range(first, last):
            track[k] = box
    return {"boundingBoxes": track}
