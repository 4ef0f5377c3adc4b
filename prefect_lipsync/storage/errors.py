"""Errors raised while reading or writing object storage; each message names the object (never a signature)."""

from __future__ import annotations

from prefect_lipsync.storage.refs import display_ref


class StorageError(Exception):
    """An object could not be read, written or listed; `ref` is the object, shown without its query string."""

    def __init__(self, ref: str | None, message: str, fix: str | None = None) -> None:
        self.ref = display_ref(ref) if ref is not None else None
        self.message = message
        self.fix = fix
        text = f"{self.ref}: {message}" if self.ref else message
        super().__init__(f"{text} ({fix})" if fix else text)


class ObjectNotFound(StorageError):
    """The bucket or key does not exist (or the URL answers 404)."""


class StorageAccessDenied(StorageError):
    """The credentials in use may not read or write this object."""


class StorageUnavailable(StorageError):
    """The storage service could not be reached, timed out, or kept failing after botocore's retries."""


class CacheTooSmall(StorageError):
    """The object is larger than the whole local media cache may hold."""


class ObjectChanged(StorageError):
    """The object was replaced while it was being downloaded; the partial copy was thrown away."""
