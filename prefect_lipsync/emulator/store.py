"""Media the emulator holds: uploads (mediaStorage) and files fetched from URLs, by UUID and URL."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from prefect_lipsync.emulator.body import SpilledString, decode_base64_to_file

_EXT_BY_MIME = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
}


class MediaRefError(ValueError):
    """A media reference the emulator cannot resolve to a file."""


@dataclass(frozen=True)
class StoredMedia:
    media_uuid: str
    path: Path
    size: int

    @property
    def name(self) -> str:
        return self.path.name


def sniff_extension(head: bytes) -> str:
    """A file extension from a file's first bytes (ffmpeg probes content anyway; this is for people)."""
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:10] == b"qt" else ".mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return ".webm"
    if head[:4] == b"OggS":
        return ".ogg"
    if head[:4] == b"fLaC":
        return ".flac"
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return ".mp3"
    return ".bin"


class MediaStore:
    """Uploaded and fetched media under `root`; lookups by mediaUUID and by the URL it was served at."""

    def __init__(self, root: Path, fetch_timeout: float) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._by_uuid: dict[str, StoredMedia] = {}
        self._by_url: dict[str, Path] = {}
        self._fetch_locks: dict[str, asyncio.Lock] = {}
        self._fetch_timeout = fetch_timeout
        self.fetch_count = 0

    def clear(self) -> None:
        for media in self._by_uuid.values():
            media.path.unlink(missing_ok=True)
        for path in self._by_url.values():
            path.unlink(missing_ok=True)
        self._by_uuid.clear()
        self._by_url.clear()
        self.fetch_count = 0

    def save_base64(self, value: str | SpilledString) -> StoredMedia:
        """Decode an upload to disk (called in a worker thread: it may be hundreds of MB)."""
        media_uuid = str(uuid.uuid4())
        tmp_dest = self.root / f"{media_uuid}.part"
        size, mime = decode_base64_to_file(value, tmp_dest)
        with tmp_dest.open("rb") as fh:
            ext = _EXT_BY_MIME.get(mime or "", "") or sniff_extension(fh.read(16))
        final = self.root / f"{media_uuid}{ext}"
        os.replace(tmp_dest, final)
        return self._remember(media_uuid, final, size)

    async def save_url(self, url: str, client: httpx.AsyncClient) -> StoredMedia:
        fetched = await self.fetch(url, client)
        media_uuid = str(uuid.uuid4())
        path = self.root / f"{media_uuid}{fetched.suffix}"
        try:
            os.link(fetched, path)
        except OSError:
            shutil.copyfile(fetched, path)
        return self._remember(media_uuid, path, path.stat().st_size)

    def _remember(self, media_uuid: str, path: Path, size: int) -> StoredMedia:
        media = StoredMedia(media_uuid, path, size)
        self._by_uuid[media_uuid] = media
        return media

    def get(self, media_uuid: str) -> StoredMedia | None:
        return self._by_uuid.get(media_uuid.lower())

    def by_name(self, name: str) -> StoredMedia | None:
        """The upload served as /media/{name} (name = mediaUUID + extension)."""
        media = self.get(name.split(".", 1)[0])
        return media if media is not None and media.name == name else None

    def delete(self, media_uuid: str) -> bool:
        media = self._by_uuid.pop(media_uuid.lower(), None)
        if media is None:
            return False
        media.path.unlink(missing_ok=True)
        return True

    async def resolve(self, ref: str, client: httpx.AsyncClient) -> Path:
        """The local file of a mediaUUID, of a /media/ URL this emulator served, or of any http(s) URL."""
        media = self.get(ref)
        if media is not None:
            return media.path
        parts = urlsplit(ref)
        if parts.scheme not in ("http", "https"):
            raise MediaRefError(
                f"unknown media reference {ref[:80]!r}: not a known mediaUUID nor an http(s) URL"
            )
        if "/media/" in parts.path:
            served = self.by_name(parts.path.rsplit("/", 1)[-1])
            if served is not None:
                return served.path
        return await self.fetch(ref, client)

    async def fetch(self, url: str, client: httpx.AsyncClient) -> Path:
        """Download `url` once (cached by URL), streamed to a file."""
        lock = self._fetch_locks.setdefault(url, asyncio.Lock())
        async with lock:
            cached = self._by_url.get(url)
            if cached is not None and cached.exists():
                return cached
            fd, tmp_name = tempfile.mkstemp(prefix=".fetch-", dir=self.root)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    async with client.stream("GET", url, timeout=self._fetch_timeout) as response:
                        if response.status_code != 200:
                            raise MediaRefError(f"fetching {_safe(url)} answered HTTP {response.status_code}")
                        async for chunk in response.aiter_bytes():
                            out.write(chunk)
                with tmp.open("rb") as fh:
                    ext = sniff_extension(fh.read(16))
                final = self.root / f"fetched-{uuid.uuid4()}{ext}"
                os.replace(tmp, final)
            except httpx.HTTPError as exc:
                tmp.unlink(missing_ok=True)
                raise MediaRefError(f"could not fetch {_safe(url)}: {type(exc).__name__}") from None
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            self._by_url[url] = final
            self.fetch_count += 1
            return final


def _safe(url: str) -> str:
    """A URL without its query (presigned URLs carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
