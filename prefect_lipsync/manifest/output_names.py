"""The one place output file names are made: from the manifest's name, else the video's file name.

For a URL source the stem comes from the URL's path (`https://cdn/x/promo.mp4?sig=1` -> `promo`),
never from the query string (kept percent-encoded); a Windows path's backslashes count as separators.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

from prefect_lipsync.manifest.loader import is_url


def output_stem(video_ref: str, name: str | None = None) -> str:
    """The stem of every output of a manifest: its `name`, else the source video's stem ('video' if none)."""
    if name:
        return name
    path = urlsplit(video_ref).path if is_url(video_ref) else video_ref
    return PurePosixPath(path.replace("\\", "/")).stem or "video"


def output_name(video_ref: str, name: str | None, language: str, suffix: str = ".mp4") -> str:
    """The file name of one language's output video: '<stem>.<language>.mp4'."""
    return f"{output_stem(video_ref, name)}.{language}{suffix}"
