"""Task UUIDs derived from a request's content: the idempotency key of a paid submission.

A re-run of the same job sends the same taskUUID; the service answers `conflictTaskUUID` and the
client polls the task it already has instead of paying for a second one. A deliberate re-run
passes a `nonce`; a resubmit after a transient task failure uses `retry_task_uuid`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from prefect_lipsync.runware.models import Sync3Request

# Delivery details, not content: a new webhook URL (fresh secret, new port), another URL lifetime,
# cost reporting or upload target must not make a new (paid) task for the same generation.
_NOT_CONTENT = frozenset({"taskUUID", "webhookURL", "ttl", "includeCost", "uploadEndpoint"})


def canonical_json(payload: Any) -> bytes:
    """Stable bytes for a JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def uuid4_from_digest(digest: bytes) -> str:
    """A UUID with the version-4 and RFC 4122 variant bits set, from the first 16 bytes of a hash."""
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def content_of(request: Sync3Request | Mapping[str, Any]) -> dict[str, Any]:
    """The wire payload of a request without the keys that are not its content."""
    wire = request.to_wire() if isinstance(request, Sync3Request) else dict(request)
    return {k: v for k, v in wire.items() if k not in _NOT_CONTENT}


def derive_task_uuid(request: Sync3Request | Mapping[str, Any], nonce: str | int | None = None) -> str:
    """The taskUUID of a request: sha256 of its canonical JSON (minus taskUUID/webhookURL) and nonce."""
    digest = hashlib.sha256(b"prefect-lipsync/task/v1\0")
    digest.update(canonical_json(content_of(request)))
    if nonce is not None:
        digest.update(b"\0nonce\0" + str(nonce).encode("utf-8"))
    return uuid4_from_digest(digest.digest())


def retry_task_uuid(task_uuid: str, attempt: int) -> str:
    """The taskUUID of resubmit number `attempt` (>= 1) of a task: new, but the same on every re-run."""
    digest = hashlib.sha256(f"prefect-lipsync/retry/v1\0{task_uuid.lower()}\0{attempt}".encode())
    return uuid4_from_digest(digest.digest())


def with_task_uuid(request: Sync3Request, nonce: str | int | None = None) -> Sync3Request:
    """The request with its taskUUID set (derived from its content when it has none)."""
    if request.task_uuid is not None:  # the caller's own UUID wins
        return request
    return request.model_copy(update={"task_uuid": derive_task_uuid(request, nonce)})
