"""Publishing a finished, checked local file to its final place, so that place never holds a partial or unchecked file.

The check runs on the local file first; only a file that passed is sent. To S3 it goes by one PUT
(or one multipart upload), and S3 makes an object visible only when its upload completes: an
interrupted upload leaves no key (s3fs aborts a failed multipart upload). The object's size is
read back before the publish counts as done. A local destination gets a temp file beside it and a
rename, the same promise on a filesystem.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fsspec.callbacks import Callback

from prefect_lipsync.storage.errors import StorageError
from prefect_lipsync.storage.filesystem import s3_filesystem, storage_errors
from prefect_lipsync.storage.refs import is_http, is_s3

MIN_PART_BYTES = 5 << 20  # S3's smallest part of a multipart upload

#: Raises when the file must not be published (a failed quality check, a wrong size, ...).
CheckFn = Callable[[Path], None]


class PublishFailed(StorageError):
    """The object did not land whole; whatever was written under the final name was removed."""


def publish_file(
    local: str | Path,
    dest: str,
    *,
    check: CheckFn | None = None,
    content_type: str | None = None,
    part_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> str:
    """Copy the local file `local` to `dest` (`s3://bucket/key` or a local path) once `check` accepts it.

    Returns `dest`. `check(local)` raising means nothing is written anywhere, and its exception
    propagates. Raises StorageError (with the destination and a fix) when the write fails.
    To S3, a file of at least twice `part_bytes` (s3fs's default: 50 MiB; at least 5 MiB) goes as a
    multipart upload; `progress(bytes_sent)` is called as parts complete.
    """
    source = Path(local)
    if not source.is_file():
        raise StorageError(str(source), "cannot publish: not a file")
    if check is not None:
        check(source)
    if is_s3(dest):
        return _publish_s3(source, dest, content_type, part_bytes, progress)
    if is_http(dest):
        raise StorageError(
            dest, "cannot publish to an http(s) URL", "give s3://bucket/prefix or a local folder"
        )
    return str(_publish_local(source, Path(dest)))


def _publish_s3(
    source: Path,
    dest: str,
    content_type: str | None,
    part_bytes: int | None,
    progress: Callable[[int], None] | None,
) -> str:
    fs = s3_filesystem()
    size = source.stat().st_size
    extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
    if part_bytes is not None:
        extra["chunksize"] = max(part_bytes, MIN_PART_BYTES)
    if progress is not None:
        extra["callback"] = _Progress(progress)
    with storage_errors(dest, "upload the file"):
        fs.put_file(str(source), dest, **extra)
    with storage_errors(dest, "read back the uploaded object"):
        landed = fs.info(dest)
    if int(landed.get("size", -1)) != size:
        # Cannot happen with a conforming service; if it does, a wrong object must not stay.
        with storage_errors(dest, "remove the incomplete object"):
            fs.rm_file(dest)
        raise PublishFailed(
            dest, f"the stored object has {landed.get('size')} bytes, not {size}", "run again"
        )
    return dest


class _Progress(Callback):  # type: ignore[misc]  # fsspec is untyped
    """fsspec's callback protocol -> a plain `progress(bytes_sent)` function."""

    def __init__(self, progress: Callable[[int], None]) -> None:
        super().__init__()
        self._progress = progress
        self._reported = 0

    def call(self, *args: Any, **kwargs: Any) -> None:
        if self.value > self._reported:  # fsspec also calls this when it learns the size: not progress
            self._reported = int(self.value)
            self._progress(self._reported)


def _publish_local(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def file_md5(path: str | Path) -> str:
    """MD5 of a file (hex), the ETag S3 gives an object uploaded in one PUT."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
