"""A bounded, content-addressed local cache of remote media, so ffprobe and ffmpeg read a local file.

`MediaCache.materialize("s3://bucket/a.mp4")` returns a local path holding exactly that object.
Entries are named by a hash of the object's identity: for S3 its bucket, key, ETag, size and
version; for an http(s) URL its scheme, host, path, ETag and length (the query string, where a
presigned URL keeps its signature, is never part of a key). An URL that sends no ETag is
downloaded again and stored by the SHA-256 of its content. A changed object has a new ETag, so a
stale copy is never served. Downloads go to a temp file in the cache and are renamed into place
when complete, so a reader never sees half an object. The cache holds at most `max_bytes`: the
least recently used entries are deleted to make room before a download starts. A use is recorded
in the entry's access time, never its mtime: probes and analyses are remembered per (path, size,
mtime, inode), and a copy that looked new at every use would be probed again by every job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from prefect_lipsync.files import default_cache_dir
from prefect_lipsync.storage.errors import (
    CacheTooSmall,
    ObjectChanged,
    ObjectNotFound,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)
from prefect_lipsync.storage.filesystem import s3_filesystem, storage_errors
from prefect_lipsync.storage.refs import display_ref, is_http, is_remote, is_s3, ref_suffix
from prefect_lipsync.tls import shared_tls_context

CACHE_DIR_ENV = "PREFECT_LIPSYNC_MEDIA_CACHE_DIR"
CACHE_BYTES_ENV = "PREFECT_LIPSYNC_MEDIA_CACHE_BYTES"
DEFAULT_MAX_BYTES = 4 << 30
CHUNK_BYTES = 1 << 20
HTTP_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)
DOWNLOAD_DEADLINE_S = 1800.0  # a whole download, however slow the chunks come
STALE_TEMP_S = 3600.0  # a temp file this old belongs to a killed download


def default_media_cache_dir() -> Path:
    """`$PREFECT_LIPSYNC_MEDIA_CACHE_DIR`, else `<the project's cache dir>/media`."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return default_cache_dir() / "media"


def default_max_bytes() -> int:
    raw = os.environ.get(CACHE_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError as exc:
        raise StorageError(None, f"{CACHE_BYTES_ENV}={raw!r} is not a whole number of bytes") from exc
    if value <= 0:
        raise StorageError(None, f"{CACHE_BYTES_ENV} must be positive, got {value}")
    return value


def identity_key(kind: str, where: str, etag: str, size: int | None, version: str | None = None) -> str:
    """The cache key of one version of an object: a SHA-256 of what identifies it (no query, no secret)."""
    text = "\0".join([kind, where, etag.strip('"'), str(size if size is not None else ""), version or ""])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    size: int
    last_used: float


class MediaCache:
    """Remote media as local files, at most `max_bytes` of them, least recently used evicted first."""

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        max_bytes: int | None = None,
        http_timeout: httpx.Timeout = HTTP_TIMEOUT,
        deadline_s: float = DOWNLOAD_DEADLINE_S,
    ) -> None:
        self.root = Path(root) if root is not None else default_media_cache_dir()
        self.max_bytes = max_bytes if max_bytes is not None else default_max_bytes()
        self.http_timeout = http_timeout
        self.deadline_s = deadline_s
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public

    def materialize(self, ref: str) -> Path:
        """A local file holding the object `ref` (s3:// or http(s)://), downloaded once per version."""
        if is_s3(ref):
            return self._materialize_s3(ref)
        if is_http(ref):
            return self._materialize_http(ref)
        raise StorageError(ref, "not a remote reference (s3:// or http(s)://)")

    def key_for(self, ref: str) -> str:
        """The cache key `ref` has now (asks the service for its ETag; downloads nothing from S3)."""
        if is_s3(ref):
            return self._s3_key(ref, self._s3_info(ref))
        with self._http_get(ref) as response:
            key = self._http_key(ref, response)
        if key is None:
            raise StorageError(ref, "the server sends no ETag: its cache key is the content's hash")
        return key

    def entries(self) -> list[CacheEntry]:
        """The complete objects in the cache, least recently used first."""
        out = []
        with contextlib.suppress(FileNotFoundError):
            for item in os.scandir(self.objects):
                with contextlib.suppress(FileNotFoundError):
                    st = item.stat()
                    out.append(CacheEntry(Path(item.path), st.st_size, st.st_atime))
        return sorted(out, key=lambda e: e.last_used)

    def total_bytes(self) -> int:
        """Bytes held: complete objects and downloads under way."""
        total = sum(e.size for e in self.entries())
        with contextlib.suppress(FileNotFoundError):
            for item in os.scandir(self.tmp):
                with contextlib.suppress(FileNotFoundError):
                    total += item.stat().st_size
        return total

    # ------------------------------------------------------------------ S3

    def _s3_info(self, ref: str) -> dict[str, Any]:
        with storage_errors(ref, "read the object's metadata"):
            info: dict[str, Any] = s3_filesystem().info(ref)
        if info.get("type") != "file":
            raise ObjectNotFound(ref, "is a prefix (a folder), not an object", "name one object")
        return info

    @staticmethod
    def _s3_key(ref: str, info: dict[str, Any]) -> str:
        parts = urlsplit(ref)
        where = f"{parts.netloc}/{parts.path.lstrip('/')}"
        return identity_key(
            "s3", where, str(info.get("ETag") or ""), int(info["size"]), info.get("VersionId")
        )

    def _materialize_s3(self, ref: str) -> Path:
        info = self._s3_info(ref)
        size = int(info["size"])
        etag = str(info.get("ETag") or "").strip('"')
        target = self.objects / (self._s3_key(ref, info) + ref_suffix(ref))
        if self._hit(target):
            return target
        self._make_room(ref, size, keep=target)
        fs = s3_filesystem()
        # A plain ETag (not "…-N" of a multipart upload) is the object's MD5: check the copy against it.
        md5 = hashlib.md5(usedforsecurity=False) if etag and "-" not in etag else None
        with self._temp_file() as (handle, tmp_path):
            with (
                storage_errors(ref, "download the object"),
                fs.open(ref, "rb", block_size=CHUNK_BYTES, cache_type="none") as src,
            ):
                self._copy(ref, src.read, handle, md5)
            got = handle.tell()
            if got != size or (md5 is not None and md5.hexdigest() != etag):
                raise ObjectChanged(ref, "the object changed while it was downloaded", "run again")
            handle.close()
            self._place(tmp_path, target)
        self._make_room(ref, 0, keep=target)
        return target

    # ------------------------------------------------------------------ http(s)

    @contextlib.contextmanager
    def _http_get(self, ref: str) -> Iterator[httpx.Response]:
        try:
            with (
                httpx.Client(
                    timeout=self.http_timeout, follow_redirects=True, verify=shared_tls_context()
                ) as client,
                # identity: Content-Length must count the bytes we store, not a compressed form of them
                client.stream("GET", ref, headers={"Accept-Encoding": "identity"}) as response,
            ):
                if response.status_code == 404:
                    raise ObjectNotFound(ref, "the server answers 404 Not Found", "check the URL")
                if response.status_code in (401, 403):
                    raise StorageAccessDenied(
                        ref,
                        f"the server answers {response.status_code}",
                        "a presigned URL may have expired: make a new one",
                    )
                if response.status_code >= 400:
                    raise StorageUnavailable(ref, f"the server answers {response.status_code}")
                yield response
        except httpx.HTTPError as exc:
            raise StorageUnavailable(
                ref, f"cannot download: {type(exc).__name__}", "check the URL and the network"
            ) from exc

    @staticmethod
    def _http_key(ref: str, response: httpx.Response) -> str | None:
        etag = response.headers.get("etag", "")
        if not etag or etag.startswith("W/"):  # a weak ETag does not promise the same bytes
            return None
        parts = urlsplit(ref)
        where = f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port or ''}{parts.path}"
        length = response.headers.get("content-length")
        return identity_key("http", where, etag, int(length) if length and length.isdigit() else None)

    def _materialize_http(self, ref: str) -> Path:
        suffix = ref_suffix(ref)
        with self._http_get(ref) as response:
            key = self._http_key(ref, response)
            target = self.objects / (key + suffix) if key is not None else None
            if target is not None and self._hit(target):
                return target  # leaving the block closes the stream before its body is read
            length = response.headers.get("content-length")
            self._make_room(ref, int(length) if length and length.isdigit() else 0, keep=target)
            content = hashlib.sha256()
            with self._temp_file() as (handle, tmp_path):
                chunks = response.iter_bytes(CHUNK_BYTES)
                self._copy(ref, lambda _n: next(chunks, b""), handle, content)
                if length and length.isdigit() and handle.tell() != int(length):
                    raise ObjectChanged(ref, "the download ended early", "run again")
                handle.close()
                if target is None:
                    target = self.objects / (content.hexdigest() + suffix)
                self._place(tmp_path, target)
        self._make_room(ref, 0, keep=target)
        return target

    # ------------------------------------------------------------------ the files

    def _copy(self, ref: str, read: Any, handle: IO[bytes], digest: Any) -> None:
        """Copy chunks from `read(n)` to `handle`, within the deadline and the cache's bound."""
        deadline = time.monotonic() + self.deadline_s
        while chunk := read(CHUNK_BYTES):
            handle.write(chunk)
            if digest is not None:
                digest.update(chunk)
            if handle.tell() > self.max_bytes:
                raise CacheTooSmall(ref, self._too_small_message(handle.tell()), self._too_small_fix())
            if time.monotonic() > deadline:
                raise StorageUnavailable(ref, f"the download took longer than {self.deadline_s:.0f} s")

    def _hit(self, target: Path) -> bool:
        try:
            # The entry's access time is its last use (eviction goes by it); its mtime stays the download's.
            os.utime(target, ns=(time.time_ns(), os.stat(target).st_mtime_ns))
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def _temp_file(self) -> Iterator[tuple[IO[bytes], str]]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=self.tmp, suffix=".part")
        handle = os.fdopen(fd, "wb")
        try:
            yield handle, tmp_path
        finally:
            handle.close()
            Path(tmp_path).unlink(missing_ok=True)  # after a successful rename there is nothing left

    def _place(self, tmp_path: str, target: Path) -> None:
        self.objects.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_path, target)

    def _too_small_message(self, size: int) -> str:
        return f"the object has {size} bytes, more than the whole media cache may hold ({self.max_bytes})"

    def _too_small_fix(self) -> str:
        return f"raise {CACHE_BYTES_ENV}"

    def _make_room(self, ref: str, incoming: int, *, keep: Path | None) -> None:
        """Evict least recently used entries until `incoming` more bytes fit within max_bytes."""
        if incoming > self.max_bytes:
            raise CacheTooSmall(ref, self._too_small_message(incoming), self._too_small_fix())
        with self._lock, _file_lock(self.root / ".lock"):
            self._drop_stale_temps()
            total = self.total_bytes()
            for entry in self.entries():
                if total + incoming <= self.max_bytes:
                    break
                if keep is not None and entry.path == keep:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    entry.path.unlink()
                    total -= entry.size

    def _drop_stale_temps(self) -> None:
        cutoff = time.time() - STALE_TEMP_S
        with contextlib.suppress(FileNotFoundError):
            for item in os.scandir(self.tmp):
                with contextlib.suppress(FileNotFoundError):
                    if item.stat().st_mtime < cutoff:
                        os.unlink(item.path)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An advisory lock across processes where fcntl exists (eviction must not race a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the thread lock alone
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_default: MediaCache | None = None
_default_lock = threading.Lock()


def default_media_cache() -> MediaCache:
    """The process's media cache, at `default_media_cache_dir()`, bounded by `default_max_bytes()`."""
    global _default
    root, max_bytes = default_media_cache_dir(), default_max_bytes()
    with _default_lock:
        if _default is None or (_default.root, _default.max_bytes) != (root, max_bytes):
            _default = MediaCache(root, max_bytes=max_bytes)
        return _default


def materialize(ref: str) -> Path:
    """`default_media_cache().materialize(ref)`."""
    return default_media_cache().materialize(ref)


def local_copies(refs: Iterable[str], cache: MediaCache | None = None) -> dict[str, Path]:
    """Each remote ref among `refs` -> its local copy: the `local_media` mapping pre-flight and checks take."""
    use = cache or default_media_cache()
    return {ref: use.materialize(ref) for ref in dict.fromkeys(refs) if is_remote(ref)}


__all__ = [
    "CacheEntry",
    "MediaCache",
    "default_media_cache",
    "display_ref",
    "identity_key",
    "local_copies",
    "materialize",
]
