"""A folder of files kept by the command that made them, given again for the same command and inputs.

Off unless its environment variable names a folder. The key is the command with each input file
named by the SHA-256 of its content and the output by a placeholder that keeps its extension (the
extension picks the format), so a hit is the very file that command made from those bytes: nothing
differs from running the command again but the time it takes. Users: the emulator's renderings
(`emulator.render_cache`) and synthetic media (`media.synth`), both turned on by the test suite, which
makes and renders the same few files in hundreds of tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from prefect_lipsync.files import link_or_copy_atomic
from prefect_lipsync.media.hashing import cached_file_sha256


class OutputCache:
    """Files kept under `$<env>`, by command. With `share_files`, a hit is a hard link to the kept file
    (for files nobody edits in place, such as the emulator's downloads); else a copy."""

    def __init__(self, env: str, *, share_files: bool) -> None:
        self.env = env
        self.share_files = share_files

    def folder(self) -> Path | None:
        value = os.environ.get(self.env, "").strip()
        return Path(value) if value else None

    def key(self, argv: Sequence[str], *, inputs: Sequence[Path], output: Path) -> str | None:
        """What decides the output: the command, its inputs by content, its output by a placeholder.
        None with the cache off (no input is read then)."""
        if self.folder() is None:
            return None
        by_content = {str(path): f"sha256:{cached_file_sha256(path)}" for path in inputs}
        by_content[str(output)] = f"<output{output.suffix}>"
        words = [by_content.get(word, word) for word in argv]
        return hashlib.sha256("\0".join(words).encode()).hexdigest()

    def fetch(self, cache_key: str | None, output: Path) -> bool:
        """With the cache on and `cache_key` in it: `output` becomes that file (atomically); True."""
        root = self.folder()
        if root is None or cache_key is None:
            return False
        kept = root / f"{cache_key}{output.suffix}"
        if not kept.exists():
            return False
        try:
            link_or_copy_atomic(kept, output, link=self.share_files)
        except OSError:
            return False  # evicted or unreadable meanwhile: run the command instead
        return True

    def store(self, cache_key: str | None, output: Path) -> None:
        """With the cache on: keep `output`, just made, under `cache_key` (a failure only loses the hit)."""
        root = self.folder()
        if root is None or cache_key is None:
            return
        with contextlib.suppress(OSError):
            root.mkdir(parents=True, exist_ok=True)
            link_or_copy_atomic(output, root / f"{cache_key}{output.suffix}", link=self.share_files)

    def make(
        self, argv: Sequence[str], *, output: Path, inputs: Sequence[Path] = (), run: Callable[[], object]
    ) -> None:
        """`output` as `run()` (which runs `argv`) makes it: from the cache when it holds it, else by
        running it and keeping what it made."""
        cache_key = self.key(argv, inputs=inputs, output=output)
        if self.fetch(cache_key, output):
            return
        run()
        self.store(cache_key, output)
