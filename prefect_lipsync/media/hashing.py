"""Content hashes of files, read in chunks so a large video never sits in memory."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from prefect_lipsync.media.errors import MediaError

CHUNK_BYTES = 1 << 20

FileIdentity = tuple[str, int, int, int]
"""(real path, size, mtime_ns, inode): what a per-process memo of a file's content keys on."""

# identity -> hex digest: a file hashed once per process is not re-read while it stays unchanged
# (the planner asks for the same dub file for many lines).
_memo: dict[FileIdentity, str] = {}
_memo_lock = threading.Lock()
_MEMO_MAX = 4096


def file_sha256(path: str | Path, *, chunk_bytes: int = CHUNK_BYTES) -> str:
    """SHA-256 of a file's content as 64 hex digits, streamed in `chunk_bytes` chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(chunk_bytes):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise MediaError(path, "file not found") from exc
    except IsADirectoryError as exc:
        raise MediaError(path, "is a directory, not a file") from exc
    return digest.hexdigest()


def file_identity(path: str | Path) -> FileIdentity:
    """The file's real path, size, mtime and inode: equal while the file is unchanged (OSError if absent)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return (real, st.st_size, st.st_mtime_ns, st.st_ino)


def cached_file_sha256(path: str | Path) -> str:
    """`file_sha256`, remembered for this process while the file's size, mtime and inode stay the same."""
    try:
        key = file_identity(path)
    except FileNotFoundError as exc:
        raise MediaError(path, "file not found") from exc
    real = key[0]
    with _memo_lock:
        known = _memo.get(key)
    if known is not None:
        return known
    digest = file_sha256(real)
    with _memo_lock:
        if len(_memo) >= _MEMO_MAX:
            _memo.clear()  # crude bound: a worker process never grows without limit
        _memo[key] = digest
    return digest
