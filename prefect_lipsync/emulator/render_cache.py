"""A render cache: a rendering kept by what made it, given again for the same inputs and command.

Off by default. `PREFECT_LIPSYNC_EMULATOR_RENDER_CACHE=DIR` in the emulator's environment turns it on:
every emulator sharing DIR (processes and runs alike) renders a given request once. The key is the
ffmpeg command with each input file named by the SHA-256 of its content and the output by a
placeholder, so a hit is the very file that command made from those bytes. Unlike cheap outputs,
nothing differs from a fresh rendering but the time it takes. The test suite sets it for its run:
dozens of tests render the same demo, each on its own emulator.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from prefect_lipsync.files import link_or_copy_atomic
from prefect_lipsync.media.hashing import cached_file_sha256

ENV = "PREFECT_LIPSYNC_EMULATOR_RENDER_CACHE"
_OUTPUT = "<output>"


def folder() -> Path | None:
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def key(argv: Sequence[str], *, inputs: Sequence[Path], output: Path) -> str | None:
    """What decides the rendering: the command, its inputs by content, its output by a placeholder.
    None with the cache off (no input is read then)."""
    if folder() is None:
        return None
    by_content = {str(path): f"sha256:{cached_file_sha256(path)}" for path in inputs}
    by_content[str(output)] = _OUTPUT
    words = [by_content.get(word, word) for word in argv]
    return hashlib.sha256("\0".join(words).encode()).hexdigest()


def fetch(cache_key: str | None, output: Path) -> bool:
    """With the cache on and `cache_key` in it: `output` becomes that rendering (atomically); True."""
    root = folder()
    if root is None or cache_key is None:
        return False
    kept = root / f"{cache_key}{output.suffix}"
    if not kept.exists():
        return False
    try:
        link_or_copy_atomic(kept, output)
    except OSError:
        return False  # evicted or unreadable meanwhile: render instead
    return True


def store(cache_key: str | None, output: Path) -> None:
    """With the cache on: keep `output`, just rendered, under `cache_key` (a failure only loses the hit)."""
    root = folder()
    if root is None or cache_key is None:
        return
    with contextlib.suppress(OSError):
        root.mkdir(parents=True, exist_ok=True)
        link_or_copy_atomic(output, root / f"{cache_key}{output.suffix}")
