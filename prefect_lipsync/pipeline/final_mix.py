"""The delivered audio: a checked output's dub mixed over the plan's music-and-effects stem.

The checks judge what the service returned (the dub); the file that is delivered gets the final mix
(`PlannedJob.final_mix`, from the manifest's `music_and_effects`), made in place on the staged file
just before it is settled into its delivery name (or quarantine, or held for review).
"""

from __future__ import annotations

from pathlib import Path

from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.mix import mix_over_stem
from prefect_lipsync.pipeline.destination import remove_objects
from prefect_lipsync.storage.refs import display_ref, is_remote

#: The mix reads and encodes audio only (the picture is copied): this long, plus a second per second.
MIX_TIMEOUT_BASE_S = 120.0


def _local_stem(ref: str) -> Path:
    """The stem as a local file: object storage and URLs through the bounded media cache."""
    if is_remote(ref):
        from prefect_lipsync.storage.cache import materialize

        return materialize(ref)
    return Path(ref)


def mix_for_delivery(
    job: PlannedJob, staged: Path, stored: str | None = None, notes: list[str] | None = None
) -> str | None:
    """Remake `staged`'s audio as the job's plan says: its dub over the M&E stem (no stem: untouched).

    `stored` is the object the service PUT the result to (deliver_to_storage); it is returned while it
    is still the file to deliver, and removed (None returned) once the mix replaced the file. A line
    saying what was done goes to `notes` (the quality report's). Raises MediaError naming the stem.
    """
    mix = job.final_mix
    if mix is None:
        return stored
    stem = _local_stem(mix.stem)
    # The marker says "this staged file is the service's result": a re-run after a crash from here on
    # downloads that result again instead of mixing a mixed file a second time.
    staged.with_name(f".{staged.name}.video-uuid").unlink(missing_ok=True)
    which = (
        f"stream {mix.stream} of {display_ref(mix.stem)}" if mix.stream is not None else display_ref(mix.stem)
    )
    try:
        mix_over_stem(
            staged,
            stem,
            staged,
            windows=mix.dub_windows,
            layout=mix.layout,
            channels=mix.channels,
            sample_rate=mix.sample_rate,
            stem_stream=mix.stream,
            timeout=MIX_TIMEOUT_BASE_S + job.video_duration,
        )
    except MediaError as exc:
        raise MediaError(
            staged, f"the final mix over the music-and-effects stem ({which}) failed: {exc.message}"
        ) from exc
    if notes is not None:
        notes.append(
            f"Delivered audio: the dub over the music-and-effects stem ({which}), {mix.layout} at "
            f"{mix.sample_rate} Hz; the checks above judged the service's output before this mix."
        )
    if stored is not None:
        remove_objects([stored])
    return None
