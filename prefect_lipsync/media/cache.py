"""A probe cache that survives between runs: one JSON file keyed on (real path, size, mtime, inode).

Writes go to a temporary file in the same directory and are renamed over the old one, so a
reader never sees half a file; when two processes save at once, the last rename wins and both
files were complete. Before writing, entries another process saved meanwhile are merged in.
A file that cannot be read as a cache (corrupt, other version) is ignored and rebuilt.
Where `fcntl` exists, the read-merge-write is done under an advisory lock (waited for at most
`LOCK_WAIT_S`), so two processes saving at once keep each other's entries.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prefect_lipsync.files import default_cache_dir, write_text_atomic
from prefect_lipsync.media.info import MediaInfo

logger = logging.getLogger(__name__)

CACHE_FILE_NAME = "probe.json"
#: 3: MediaInfo gained frame timestamps, rotation, displayed size and the start timecode (2), and
#: audio streams their channel layout; an older file is read as empty, so no entry of an old shape is
#: taken for the new one.
FORMAT_VERSION = 3
DEFAULT_MAX_ENTRIES = 50_000
LOCK_WAIT_S = 2.0


def default_cache_path() -> Path:
    return default_cache_dir() / CACHE_FILE_NAME


@dataclass(frozen=True)
class FileKey:
    """What identifies one version of a local file: a changed size, mtime or inode means probe again."""

    path: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: str | Path) -> FileKey | None:
        """The key of a regular file, or None when it cannot be stat'ed or is not a regular file."""
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return cls(real, st.st_size, st.st_mtime_ns, st.st_ino)


class ProbeCache:
    """MediaInfo per file version, loaded lazily from and saved atomically to one JSON file."""

    def __init__(self, path: str | Path | None = None, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] | None = None
        self._dirty: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"ProbeCache({str(self.path)!r})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._loaded())

    def get(self, key: FileKey) -> MediaInfo | None:
        """The cached MediaInfo of this exact file version, or None."""
        with self._lock:
            entry = self._loaded().get(key.path)
        if entry is None or entry.get("size") != key.size or entry.get("mtime_ns") != key.mtime_ns:
            return None
        if entry.get("inode") != key.inode:
            return None
        try:
            return MediaInfo.model_validate(entry["info"])
        except (KeyError, ValidationError):
            return None  # written by an older layout: probe again and overwrite

    def put(self, key: FileKey, info: MediaInfo) -> None:
        """Remember `info` for this file version (in memory until `save`)."""
        entry = {
            "size": key.size,
            "mtime_ns": key.mtime_ns,
            "inode": key.inode,
            "stored_at": time.time(),
            "info": info.model_dump(mode="json"),
        }
        with self._lock:
            self._loaded()[key.path] = entry
            self._dirty[key.path] = entry

    def save(self) -> None:
        """Write new entries to disk, merged with what other processes saved; a failure only warns."""
        with self._lock:
            if not self._dirty:
                return
            try:
                with _file_lock(self.path.with_name(self.path.name + ".lock")):
                    merged = self._read_disk()
                    merged.update(self._dirty)
                    if len(merged) > self.max_entries:
                        keep = sorted(merged.items(), key=lambda item: item[1].get("stored_at", 0.0))
                        merged = dict(keep[-self.max_entries :])
                    self._write_atomically(merged)
            except OSError as exc:
                # The cache only saves time: a read-only home must not fail a probe.
                logger.warning("could not save the probe cache %s: %s", self.path, exc)
                return
            self._entries = merged
            self._dirty = {}

    def clear(self) -> None:
        """Forget every entry, in memory and on disk."""
        with self._lock:
            self._entries = {}
            self._dirty = {}
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _loaded(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = self._read_disk()
        return self._entries

    def _read_disk(self) -> dict[str, dict[str, Any]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            logger.warning("could not read the probe cache %s: %s", self.path, exc)
            return {}
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("ignoring a corrupt probe cache %s; it will be rebuilt", self.path)
            return {}
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            return {}
        entries = data.get("entries")
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items() if isinstance(v, dict)}

    def _write_atomically(self, entries: dict[str, dict[str, Any]]) -> None:
        payload = json.dumps({"version": FORMAT_VERSION, "entries": entries}, separators=(",", ":"))
        write_text_atomic(self.path, payload)


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `lock_path`; after LOCK_WAIT_S go on without it."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: the atomic rename alone keeps the file sound
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        locked = False
        while not locked:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    break  # a stuck holder must not stop us: fall back to last-writer-wins
                time.sleep(0.005)
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_defaults: dict[Path, ProbeCache] = {}
_defaults_lock = threading.Lock()


def default_probe_cache() -> ProbeCache:
    """The process-wide cache at `default_cache_path()` (looked up again on every call, so the env applies)."""
    path = default_cache_path()
    with _defaults_lock:
        cache = _defaults.get(path)
        if cache is None:
            cache = _defaults[path] = ProbeCache(path)
        return cache
