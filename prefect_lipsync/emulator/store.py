"""Media the emulator holds: uploads (mediaStorage, by mediaUUID and by the name they are served at)."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
    """Uploaded media under `root`, by mediaUUID and by the /media/ name it is served at."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._by_uuid: dict[str, StoredMedia] = {}

    def clear(self) -> None:
        for media in self._by_uuid.values():
            media.path.unlink(missing_ok=True)
        self._by_uuid.clear()

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

    def save_file(self, fetched: Path) -> StoredMedia:
        """Store a fetched file as an upload of its own (a link, not a copy, where possible)."""
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

    def lookup(self, ref: str, own_media_url: str) -> Path | None:
        """The file of a mediaUUID or of a /media/ URL held here; None for a URL to fetch.

        MediaRefError for what can be refused at once: neither a known mediaUUID nor an http(s)
        URL, or a URL under this emulator's own /media/ that names nothing.
        """
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
            if ref.startswith(own_media_url.rstrip("/") + "/"):
                raise MediaRefError(f"no media at {ref[:120]} (never uploaded, or deleted)")
        return None
