"""What kind of reference a manifest or a flow was given: a local path, `s3://bucket/key`, or an http(s) URL."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

REMOTE_SCHEMES = ("s3", "http", "https")


def is_s3(ref: str | object) -> bool:
    """`s3://bucket/...` (a bucket is required; the key may be empty for a prefix)."""
    if not isinstance(ref, str):
        return False
    parts = urlsplit(ref)
    return parts.scheme.lower() == "s3" and bool(parts.netloc)


def is_http(ref: str | object) -> bool:
    """An http(s) URL with a host, e.g. a presigned GET URL."""
    if not isinstance(ref, str):
        return False
    parts = urlsplit(ref)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def is_remote(ref: str | object) -> bool:
    """True for `s3://` and `http(s)://` references: media that must be fetched before ffmpeg reads it."""
    return is_s3(ref) or is_http(ref)


def split_s3(ref: str) -> tuple[str, str]:
    """`s3://bucket/a/b.mp4` -> ("bucket", "a/b.mp4")."""
    if not is_s3(ref):
        raise ValueError(f"not an s3:// reference: {display_ref(ref)!r}")
    parts = urlsplit(ref)
    return parts.netloc, parts.path.lstrip("/")


def join_s3(prefix: str, *names: str) -> str:
    """`join_s3("s3://b/out", "promo.es.mp4")` -> "s3://b/out/promo.es.mp4"."""
    bucket, key = split_s3(prefix)
    parts = [p.strip("/") for p in (key, *names) if p.strip("/")]
    return f"s3://{bucket}/{'/'.join(parts)}"


def display_ref(ref: str) -> str:
    """A reference safe to log: no query string (a presigned URL's signature) and no user:password."""
    parts = urlsplit(ref)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return ref
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host if parts.scheme != "s3" else parts.netloc, parts.path, "", ""))


def ref_suffix(ref: str) -> str:
    """The file extension of the object's name (".mp4"), lowercased; "" when it has none fit for a file name."""
    suffix = PurePosixPath(urlsplit(ref).path).suffix.lower()
    return suffix if 1 < len(suffix) <= 8 and suffix[1:].isalnum() else ""
