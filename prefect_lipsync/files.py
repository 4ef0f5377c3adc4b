"""The one atomic writer: a reader sees the old file or the whole new one, never a partial one.

Every write goes to a temp file with a unique name beside the target (same folder, so the rename
cannot cross filesystems), every byte is written (a short `os.write` is continued), the data is
fsynced, and only then renamed onto the target; on any failure the temp file is removed and the
target is left as it was. The temp file is created with mode 0o666 through the kernel, so the new
file gets what the user's umask gives any new file (`tempfile.mkstemp` would make it 0600).

    write_text_atomic(path, text)                 # a whole text
    write_bytes_atomic(path, data)                # whole bytes
    write_chunks_atomic(path, chunks)             # an iterator of byte chunks, streamed
    with atomic_writer(path) as out:              # streamed by the caller: out.write(chunk)
        ...
    with atomic_path(path) as tmp:                # a tool that writes by name (ffmpeg, PIL)
        run_tool(tmp)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

_NEW_FILE_MODE = 0o666  # the kernel applies the umask, as for any new file
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _create_temp(target: Path, suffix: str) -> tuple[int, Path]:
    """A new, empty, uniquely named file beside `target`, opened for writing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, _CREATE_FLAGS, _NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {target}")  # pragma: no cover


def write_all(fd: int, data: bytes | bytearray | memoryview) -> int:
    """Write every byte of `data` to `fd` (os.write may write less than asked); returns the count."""
    view = memoryview(data).cast("B")
    total = len(view)
    while view:
        view = view[os.write(fd, view) :]
    return total


def _fsync_dir(folder: Path) -> None:
    # The rename itself is durable only once the folder is synced (best effort: not every OS can).
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicFile:
    """The open temp file of an `atomic_writer`: write bytes to it; `written` counts them."""

    def __init__(self, fd: int, temp_path: Path, target: Path) -> None:
        self.fd = fd
        self.temp_path = temp_path
        self.target = target
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = write_all(self.fd, data)
        self.written += n
        return n


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[AtomicFile]:
    """Stream bytes into `path`: it appears, whole, only when the block ends without an error."""
    target = Path(path)
    fd, tmp = _create_temp(target, suffix)
    closed = False
    try:
        out = AtomicFile(fd, tmp, target)
        yield out
        os.fsync(fd)
        os.close(fd)
        closed = True
        os.replace(tmp, target)
    except BaseException:
        if not closed:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp path beside `path` for a tool that writes by name; renamed onto `path` on success.

    The temp name keeps the target's extension, so ffmpeg or PIL pick the same format. The file
    already exists (empty, with the umask's mode) when the block starts: tools overwrite it.
    """
    target = Path(path)
    fd, tmp = _create_temp(target, target.suffix)
    os.close(fd)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def link_or_copy_atomic(source: Path, dest: Path, *, link: bool = True) -> None:
    """`dest` becomes `source`'s content at once (a hard link if `link` and the disk allows, else a
    copy), never half there."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}")
    try:
        try:
            if not link:
                shutil.copyfile(source, tmp)
            else:
                os.link(source, tmp)
        except OSError:
            if not link:
                raise
            shutil.copyfile(source, tmp)  # another disk, or no hard links there
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_chunks_atomic(path: str | os.PathLike[str], chunks: Iterable[bytes]) -> Path:
    """Write an iterator of byte chunks to `path` atomically (memory does not grow with the file)."""
    with atomic_writer(path) as out:
        for chunk in chunks:
            out.write(chunk)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_writer(path) as out:
        out.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically."""
    return write_bytes_atomic(path, text.encode(encoding))


#: The project's cache folder (probe cache, journal, audio renders, outbox), for every layer.
CACHE_DIR_ENV = "PREFECT_LIPSYNC_CACHE_DIR"


def default_cache_dir() -> Path:
    """`$PREFECT_LIPSYNC_CACHE_DIR`, else `$XDG_CACHE_HOME/prefect-lipsync`, else `~/.cache/prefect-lipsync`."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "prefect-lipsync"
