"""Cheap outputs: one rendering per request shape, copied for every later request of that shape.

Off by default. `PREFECT_LIPSYNC_EMULATOR_CHEAP_OUTPUTS=1` in the emulator's environment turns it on,
for benchmarks that measure orchestration at a thousand jobs, not the emulator's ffmpeg. A shape is
what decides the output's form: the source video (path, size, modification time), the output format
and quality, the sync mode, the segments' windows and the variation's audio offset. The dub itself is
not part of it: a copy carries the audio of the first request of its shape, so checks that compare an
output's audio with its own dub may warn. The real service never does this; neither does the
emulator unless told.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from prefect_lipsync.files import link_or_copy_atomic
from prefect_lipsync.runware.models import Sync3Request

ENV = "PREFECT_LIPSYNC_EMULATOR_CHEAP_OUTPUTS"
#: The renderings kept, beside the outputs (the emulator's outputs folder, removed with it).
SHAPES_DIR = ".shapes"

_lock = threading.Lock()
_known: dict[str, Path] = {}


def enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def shape_of(request: Sync3Request, video: Path, audio_offset: float) -> str:
    """A digest of what decides the output's form (never of the dub itself)."""
    stat = video.stat()
    segments = request.settings.segments if request.settings else None
    windows = [(round(s.start_time, 3), round(s.end_time, 3)) for s in segments or []]
    text = repr(
        (
            str(video.resolve()),
            stat.st_size,
            stat.st_mtime_ns,
            request.output_format,
            request.output_quality,
            request.effective_sync_mode,
            windows,
            round(audio_offset, 3),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def reuse(request: Sync3Request, *, video: Path, output: Path, audio_offset: float) -> Path | None:
    """With cheap outputs on and a rendering of this shape kept: `output` made from it (atomically)."""
    if not enabled():
        return None
    with _lock:
        kept = _known.get(shape_of(request, video, audio_offset))
    if kept is None or not kept.exists():
        return None
    link_or_copy_atomic(kept, output)
    return output


def keep(request: Sync3Request, *, video: Path, output: Path, audio_offset: float) -> None:
    """With cheap outputs on: keep a link to `output`, just rendered, for the requests of its shape."""
    if not enabled():
        return
    shape = shape_of(request, video, audio_offset)
    kept = output.parent / SHAPES_DIR / f"{shape}{output.suffix}"
    link_or_copy_atomic(output, kept)
    with _lock:
        _known[shape] = kept
