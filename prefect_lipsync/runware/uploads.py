"""mediaStorage uploads that stream from disk, cached by content hash.

The JSON body is built as an async byte stream (prefix, base64 of 3-byte-aligned chunks, suffix)
so memory does not grow with the file; its length is known up front, so no chunked encoding.
The same content is uploaded once per client (and never again with a persistent cache), and
concurrent uploads of one file share a single request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from prefect_lipsync.media.hashing import cached_file_sha256
from prefect_lipsync.runware.errors import LocalMediaError, ServiceError, error_from_item
from prefect_lipsync.runware.models import MediaUpload
from prefect_lipsync.runware.transport import Transport

CHUNK_BYTES = 3 * (1 << 18)  # 768 KiB raw -> 1 MiB of base64; a multiple of 3 keeps chunks padding-free
Source = str | os.PathLike[str] | bytes


class UploadCache(Protocol):
    """Where uploads are remembered by content hash (e.g. a file shared by runs)."""

    def get(self, sha256: str) -> MediaUpload | None: ...

    def put(self, sha256: str, upload: MediaUpload) -> None: ...


class MemoryUploadCache:
    """The default: remember uploads for the life of the client."""

    def __init__(self) -> None:
        self._items: dict[str, MediaUpload] = {}

    def get(self, sha256: str) -> MediaUpload | None:
        return self._items.get(sha256)

    def put(self, sha256: str, upload: MediaUpload) -> None:
        self._items[sha256] = upload


def local_path(source: str | os.PathLike[str]) -> Path:
    """A filesystem path from a path or a `file://` URI."""
    text = os.fspath(source)
    if text.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        text = unquote(urlsplit(text).path)
    return Path(text)


def _envelope_parts(task_uuid: str) -> tuple[bytes, bytes]:
    head = json.dumps(
        [{"taskType": "mediaStorage", "taskUUID": task_uuid, "operation": "upload", "media": ""}],
        separators=(",", ":"),
    ).encode()
    prefix, suffix = head.split(b'"media":""', 1)
    return prefix + b'"media":"', b'"' + suffix


def body_length(size: int, task_uuid: str) -> int:
    prefix, suffix = _envelope_parts(task_uuid)
    return len(prefix) + 4 * ((size + 2) // 3) + len(suffix)


async def stream_body(path: Path, task_uuid: str, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    """The mediaStorage JSON body for a file, base64 encoded chunk by chunk as it is sent."""
    if chunk_bytes % 3:
        raise ValueError("chunk_bytes must be a multiple of 3")
    prefix, suffix = _envelope_parts(task_uuid)
    yield prefix
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_bytes):
            yield base64.b64encode(chunk)
    finally:
        await asyncio.to_thread(handle.close)
    yield suffix


class Uploader:
    """Uploads for one client: hash, dedupe, stream, remember."""

    def __init__(self, transport: Transport, cache: UploadCache | None = None) -> None:
        self._transport = transport
        self.cache: UploadCache = cache if cache is not None else MemoryUploadCache()
        self._in_flight: dict[str, asyncio.Future[MediaUpload]] = {}
        self.uploads_sent = 0

    async def upload(self, source: Source) -> MediaUpload:
        """Upload a file (path or file:// URI) or bytes once; the same content again costs nothing."""
        path: Path | None = None
        if isinstance(source, bytes):
            digest = hashlib.sha256(source).hexdigest()
        else:
            path = local_path(source)
            if not path.is_file():
                raise LocalMediaError(f"cannot upload {path.name!r}: no such file")
            digest = await asyncio.to_thread(cached_file_sha256, path)
        known = self.cache.get(digest)
        if known is not None:
            return known
        shared = self._in_flight.get(digest)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[MediaUpload] = asyncio.get_running_loop().create_future()
        self._in_flight[digest] = future
        try:
            if isinstance(source, bytes):
                result = await self._send(lambda tid: self._bytes_body(source, tid), len(source))
            else:
                assert path is not None
                size = path.stat().st_size
                result = await self._send(lambda tid: stream_body(path, tid), size)
            self.cache.put(digest, result)
            future.set_result(result)
            return result
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked as retrieved: nobody else may be waiting
            raise
        finally:
            del self._in_flight[digest]

    @staticmethod
    async def _bytes_body(data: bytes, task_uuid: str) -> AsyncIterator[bytes]:
        prefix, suffix = _envelope_parts(task_uuid)
        yield prefix
        view = memoryview(data)
        for i in range(0, len(data), CHUNK_BYTES):
            yield base64.b64encode(view[i : i + CHUNK_BYTES])
        yield suffix

    async def _send(self, make_body: Callable[[str], AsyncIterator[bytes]], size: int) -> MediaUpload:
        # A fresh taskUUID per attempt: a retried upload after a lost answer must get a mediaUUID
        # back, not a conflict (an extra stored copy costs nothing; a missing UUID breaks the job).
        attempt_uuid: list[str] = []

        def body() -> AsyncIterator[bytes]:
            attempt_uuid.append(str(uuid.uuid4()))
            return make_body(attempt_uuid[-1])

        probe_uuid = str(uuid.UUID(int=0, version=4))  # same length as any UUID string
        self.uploads_sent += 1
        envelope = await self._transport.post(
            body=body, content_length=body_length(size, probe_uuid), what=f"upload of {size} bytes"
        )
        sent = attempt_uuid[-1] if attempt_uuid else None
        for err in envelope.errors:
            raise error_from_item(err, task_uuid=sent)
        for item in envelope.data:
            if item.get("mediaUUID") and item.get("taskUUID") in (None, sent):
                return MediaUpload.model_validate(item)
        for item in envelope.data:
            if item.get("mediaUUID"):
                return MediaUpload.model_validate(item)
        raise ServiceError("Runware answered an upload without a mediaUUID", task_uuid=sent)
