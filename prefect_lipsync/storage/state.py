"""Where the runner keeps what makes a resume free (job records, uploads, done markers): a local
folder by default, or an fsspec URL (`s3://bucket/prefix`) that every worker of a pool sees.

    store = state_store(None)                   # <cache>/ on this machine
    store = state_store("s3://team/lipsync")    # shared: a manifest resumed on another worker
    store.write_text("journal/x.json", "{}")    # atomic: temp + rename, or one S3 PUT
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from prefect_lipsync.files import default_cache_dir, write_text_atomic
from prefect_lipsync.storage.refs import is_s3, join_s3

#: An fsspec URL (or folder) for the shared state of a team's workers.
STATE_URL_ENV = "PREFECT_LIPSYNC_STATE_URL"


class StateStore(Protocol):
    """Small JSON documents by key; a write is all or nothing."""

    def read_text(self, key: str) -> str | None: ...

    def write_text(self, key: str, text: str) -> None: ...

    def describe(self) -> str: ...


class LocalStore:
    """Documents as files under a folder, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_text(self, key: str) -> str | None:
        try:
            return (self.root / key).read_text(encoding="utf-8")
        except OSError:
            return None

    def write_text(self, key: str, text: str) -> None:
        write_text_atomic(self.root / key, text)

    def describe(self) -> str:
        return str(self.root)


class S3Store:
    """Documents as objects under an `s3://bucket/prefix` (one PUT each: never a partial object)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _fs(self) -> Any:  # fsspec is untyped
        from prefect_lipsync.storage.filesystem import s3_filesystem

        return s3_filesystem()

    def read_text(self, key: str) -> str | None:
        from prefect_lipsync.storage.errors import ObjectNotFound
        from prefect_lipsync.storage.filesystem import storage_errors

        ref = join_s3(self.url, key)
        try:
            with storage_errors(ref, "read"):
                data: bytes = self._fs().cat_file(ref)
        except ObjectNotFound:
            return None
        return data.decode("utf-8")

    def write_text(self, key: str, text: str) -> None:
        from prefect_lipsync.storage.filesystem import storage_errors

        ref = join_s3(self.url, key)
        with storage_errors(ref, "write"):
            self._fs().pipe_file(ref, text.encode("utf-8"))

    def describe(self) -> str:
        return self.url


def state_store(url: str | None = None) -> StateStore:
    """The store at `url`, else `$PREFECT_LIPSYNC_STATE_URL`, else the local cache folder."""
    where = url or os.environ.get(STATE_URL_ENV) or None
    if where is None:
        return LocalStore(default_cache_dir())
    if is_s3(where):
        return S3Store(where)
    return LocalStore(Path(where).expanduser())
