"""Listing objects under an s3:// prefix, and presigned URLs for the service to read or write one object."""

from __future__ import annotations

from collections.abc import Iterable

from prefect_lipsync.storage.errors import StorageError
from prefect_lipsync.storage.filesystem import s3_filesystem, storage_errors
from prefect_lipsync.storage.refs import is_s3, split_s3

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_EXPIRES_S = 3600
MAX_EXPIRES_S = 7 * 24 * 3600  # SigV4's limit


def list_objects(prefix: str, *, suffixes: tuple[str, ...] = ()) -> list[str]:
    """Every object under `prefix` (recursively) as s3:// refs, sorted; only those ending in `suffixes` if given."""
    if not is_s3(prefix):
        raise StorageError(prefix, "not an s3:// prefix", "give s3://bucket/prefix")
    bucket, key = split_s3(prefix)
    with storage_errors(prefix, "list the prefix"):
        found = s3_filesystem().find(f"{bucket}/{key}".rstrip("/"))
    names = [f"s3://{name}" for name in found]
    if suffixes:
        names = [n for n in names if n.lower().endswith(tuple(s.lower() for s in suffixes))]
    return sorted(names)


def list_manifests(prefix: str) -> list[str]:
    """The manifest files (.yaml, .yml, .json) under an s3:// prefix, sorted."""
    return list_objects(prefix, suffixes=MANIFEST_SUFFIXES)


def _presign(ref: str, method: str, expires_s: int, **params: str) -> str:
    if not is_s3(ref) or not split_s3(ref)[1]:
        raise StorageError(ref, "not an s3:// object", "give s3://bucket/key")
    if not 0 < expires_s <= MAX_EXPIRES_S:
        raise StorageError(ref, f"expires_s must be between 1 and {MAX_EXPIRES_S}, got {expires_s}")
    with storage_errors(ref, "sign a URL"):
        url: str = s3_filesystem().url(ref, expires=expires_s, client_method=method, **params)
    return url


def presign_get(ref: str, *, expires_s: int = DEFAULT_EXPIRES_S) -> str:
    """An https URL anyone may GET `ref` with for `expires_s` seconds (e.g. a request's input video)."""
    return _presign(ref, "get_object", expires_s)


def presign_refs(refs: Iterable[str], *, expires_s: int = DEFAULT_EXPIRES_S) -> dict[str, str]:
    """Each s3:// object among `refs` -> a presigned GET URL, for a request the service must read.

    Derive a request's taskUUID from its s3:// refs, not from these URLs: they change with every
    signing, and each one is a credential (keep them out of logs and cache keys).
    """
    return {ref: presign_get(ref, expires_s=expires_s) for ref in dict.fromkeys(refs) if is_s3(ref)}


def presign_put(ref: str, *, expires_s: int = DEFAULT_EXPIRES_S, content_type: str | None = None) -> str:
    """An URL the service may PUT its output to (sync-3's `uploadEndpoint`); the PUT must send `content_type` if given.

    A presigned URL is a credential for one object: keep it out of logs, artifacts and cache keys.
    """
    extra = {"ContentType": content_type} if content_type else {}
    return _presign(ref, "put_object", expires_s, **extra)
