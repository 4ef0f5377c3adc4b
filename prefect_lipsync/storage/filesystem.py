"""The S3 filesystem (s3fs), configured the standard way: AWS_* environment variables and ~/.aws files.

Nothing here reads a credential itself: botocore finds AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
(or AWS_PROFILE, an instance role, ...), AWS_DEFAULT_REGION and AWS_ENDPOINT_URL_S3 (or
AWS_ENDPOINT_URL) for an S3-compatible service such as MinIO. Every request has a connect and a
read timeout, and transient failures are retried by botocore's own "standard" retry mode.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect_lipsync.storage.errors import (
    ObjectNotFound,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 4  # botocore's count: the first try and three retries
# Overrides, for a slow link or a test that must fail fast.
CONNECT_TIMEOUT_ENV = "PREFECT_LIPSYNC_S3_CONNECT_TIMEOUT_S"
READ_TIMEOUT_ENV = "PREFECT_LIPSYNC_S3_READ_TIMEOUT_S"
MAX_ATTEMPTS_ENV = "PREFECT_LIPSYNC_S3_MAX_ATTEMPTS"

# The environment that decides which service and which identity a filesystem talks to: a change of
# any of them (a test's new endpoint, another profile) must give a new client, not a cached one.
_ENV_THAT_MATTERS = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    CONNECT_TIMEOUT_ENV,
    READ_TIMEOUT_ENV,
    MAX_ATTEMPTS_ENV,
)
_filesystems: dict[tuple[str, int], Any] = {}
_lock = threading.Lock()

CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for an identity that may use"
    " this bucket, and AWS_ENDPOINT_URL_S3 for an S3-compatible service"
)


def _env_fingerprint() -> str:
    # Hashed so that no secret is kept as a dictionary key in memory dumps or reprs.
    text = "\0".join(os.environ.get(name, "") for name in _ENV_THAT_MATTERS)
    return hashlib.sha256(text.encode()).hexdigest()


def _number(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise StorageError(None, f"{name}={raw!r} is not a number") from exc
    if value < minimum:
        raise StorageError(None, f"{name} must be at least {minimum:g}, got {value:g}")
    return value


def s3_filesystem() -> Any:
    """An `s3fs.S3FileSystem` for the current AWS_* environment, with timeouts; one per process and environment."""
    key = (_env_fingerprint(), os.getpid())
    with _lock:
        fs = _filesystems.get(key)
        if fs is None:
            import s3fs  # imported here: the core stays importable (and fast) for local-only use

            fs = s3fs.S3FileSystem(
                skip_instance_cache=True,  # fsspec's cache ignores the environment; ours does not
                use_listings_cache=False,  # a key just written must be seen at once
                config_kwargs={
                    "connect_timeout": _number(CONNECT_TIMEOUT_ENV, CONNECT_TIMEOUT_S, minimum=0.1),
                    "read_timeout": _number(READ_TIMEOUT_ENV, READ_TIMEOUT_S, minimum=0.1),
                    "retries": {
                        "max_attempts": int(_number(MAX_ATTEMPTS_ENV, MAX_ATTEMPTS, minimum=1)),
                        "mode": "standard",
                    },
                },
            )
            fs.retries = 1  # s3fs's own retry loop off: botocore's retry mode above is the one layer
            _filesystems[key] = fs
        return fs


@contextmanager
def storage_errors(ref: str, action: str) -> Iterator[None]:
    """Turn what s3fs / botocore raise into StorageError subclasses that name `ref` and a fix."""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError as exc:
        raise ObjectNotFound(ref, f"cannot {action}: no such bucket or key", "check the s3:// path") from exc
    except PermissionError as exc:
        raise StorageAccessDenied(ref, f"cannot {action}: access denied", CREDENTIALS_FIX) from exc
    except Exception as exc:
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            raise StorageAccessDenied(
                ref, f"cannot {action}: no AWS credentials found", CREDENTIALS_FIX
            ) from exc
        if isinstance(exc, (OSError, TimeoutError)) or "Timeout" in name or "Endpoint" in name:
            raise StorageUnavailable(
                ref,
                f"cannot {action}: the storage service did not answer ({name})",
                "check AWS_ENDPOINT_URL_S3 and the network; botocore already retried",
            ) from exc
        raise StorageError(ref, f"cannot {action}: {name}: {exc}") from exc
