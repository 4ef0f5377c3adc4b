"""A fitted slot as a sync-3 segment: its times on the 0.01 s grid and the audio it plays.

A slot whose audio is sped up plays a rendered audio op (crop + tempo, keyed on the source's
content hash); the segment then names the op's output file, and the job lists the op to render.
"""

from __future__ import annotations

from typing import Any

from prefect_lipsync.manifest.frames import grid_float
from prefect_lipsync.manifest.plan_context import JobDraft, PlanContext, media_uri
from prefect_lipsync.manifest.plan_models import PlannedAudioOp
from prefect_lipsync.manifest.slots import Slot
from prefect_lipsync.media.audio_ops import AudioOp
from prefect_lipsync.media.audio_ops import output_name as op_output_name


def segment_of(ctx: PlanContext, job: JobDraft, slot: Slot) -> dict[str, Any]:
    """The sync-3 segment of a slot; a slot played faster gets a planned audio op (once per output)."""
    a_start, a_end = slot.crop_on_grid()
    if slot.tempo is None:
        audio_uri = media_uri(slot.audio_ref)
    else:
        op = AudioOp(
            source=slot.audio_ref,
            start=float(slot.a_start),
            end=float(slot.a_end),
            tempo=float(slot.tempo),
        )
        key = op.content_key(ctx.hash_fn(slot.audio_ref))
        path = ctx.ops_dir / op_output_name(key)
        audio_uri = path.as_uri()
        if str(path) not in job.op_paths:  # two slots may need the very same audio
            job.op_paths.add(str(path))
            job.ops.append(
                PlannedAudioOp(
                    op=op, content_key=key, output_path=str(path), output_uri=audio_uri, line_ids=slot.ids
                )
            )
    return {
        "startTime": grid_float(slot.start),
        "endTime": grid_float(slot.end),
        "audio": audio_uri,
        "audioStartTime": grid_float(a_start),
        "audioEndTime": grid_float(a_end),
    }
