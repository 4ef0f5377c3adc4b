"""How many outputs one process checks or draws at once.

A check decodes the output (and frames of its source) in ffmpeg and keeps every frame's mouth crop
in memory; pictures decode frames again. A batch or a chunk runs many jobs at once, and their checks
used to start together: at 100 manifests, one worker running two chunks peaked at 1,670 MB on 2
cores (1,364 MB with this limit). Past the cores, more decodes at once only cost memory.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

CHECKS_AT_ONCE_ENV = "PREFECT_LIPSYNC_CHECKS_AT_ONCE"

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def checks_at_once() -> int:
    """PREFECT_LIPSYNC_CHECKS_AT_ONCE if set (at least 1), else the CPUs this process may use: a
    decode keeps a core busy, and a worker runs two chunks (at 250 manifests, twice the CPUs per
    chunk peaked at 1,525 MB on one worker)."""
    text = os.environ.get(CHECKS_AT_ONCE_ENV, "").strip()
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            raise ValueError(f"{CHECKS_AT_ONCE_ENV}={text!r}: expected a whole number of checks") from None
    return max(1, len(os.sched_getaffinity(0)))


@contextlib.contextmanager
def check_slot() -> Iterator[None]:
    """Hold one of the process's check slots (in a worker thread: it blocks until one is free)."""
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(checks_at_once())
        slots = _slots
    with slots:
        yield
