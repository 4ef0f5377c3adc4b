"""Errors raised while probing or processing media."""

from __future__ import annotations

from pathlib import Path


class MediaError(Exception):
    """A media file could not be read or processed; the message names the file."""

    def __init__(self, path: str | Path | None, message: str) -> None:
        self.path = str(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class FFmpegNotFound(MediaError):
    """ffmpeg or ffprobe is not installed."""


class FFmpegTimeout(MediaError):
    """An ffmpeg or ffprobe run took longer than its timeout and was killed."""


class FFmpegFailed(MediaError):
    """ffmpeg or ffprobe exited non-zero; `stderr_tail` holds the end of what it printed."""

    def __init__(self, path: str | Path | None, message: str, stderr_tail: str = "") -> None:
        self.stderr_tail = stderr_tail
        super().__init__(path, f"{message}: {stderr_tail}" if stderr_tail else message)
