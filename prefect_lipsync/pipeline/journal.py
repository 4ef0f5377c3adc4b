"""What the runner remembers of each job on disk, so a crash or a re-run never uploads or pays again.

Per endpoint (never per key: a secret must not name a folder), one JSON record per job, keyed by the
job's content-derived taskUUID: the taskUUIDs the service accepted, and the outcome once delivered.
Uploads are remembered by content hash for a while (the service may purge old uploads).
The records live in the cache folder, independent of Prefect: whatever the orchestrator's API did, a
paid job's record survives.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time

from pydantic import BaseModel, Field, ValidationError

from prefect_lipsync.pipeline.outcome import LanguageOutput
from prefect_lipsync.runware.models import MediaUpload
from prefect_lipsync.storage.state import StateStore, state_store

#: Uploaded media may be purged by the service after a while; a day-old upload is redone.
UPLOAD_TTL_S = 20 * 3600.0


class JobRecord(BaseModel):
    """One job as far as it got: accepted taskUUIDs (paid), then its delivered outcome."""

    task_uuid: str = Field(description="The job's content-derived taskUUID (before any resubmit).")
    accepted: list[str] = Field(
        default_factory=list, description="TaskUUIDs the service acknowledged: each one is paid for."
    )
    outcome: LanguageOutput | None = Field(default=None, description="Set once the job was delivered.")
    delivered_to: str | None = Field(
        default=None, description="The output folder and policy of that delivery."
    )


class StoreUploadCache:
    """The client's upload cache in the state store: content hash -> the service's media UUID and URL."""

    def __init__(self, store: StateStore, prefix: str, ttl_s: float = UPLOAD_TTL_S) -> None:
        self.store, self.prefix, self.ttl_s = store, prefix, ttl_s

    def get(self, sha256: str) -> MediaUpload | None:
        text = self.store.read_text(f"{self.prefix}/{sha256}.json")
        if text is None:
            return None
        try:
            entry = json.loads(text)
            if time.time() - float(entry["at"]) > self.ttl_s:
                return None
            return MediaUpload.model_validate(entry["upload"])
        except (ValueError, KeyError, TypeError, ValidationError):
            return None

    def put(self, sha256: str, upload: MediaUpload) -> None:
        body = {"at": time.time(), "upload": upload.model_dump(mode="json", by_alias=True)}
        self.store.write_text(f"{self.prefix}/{sha256}.json", json.dumps(body))


class JobJournal:
    """Job records and uploads of one endpoint, under `journal/<endpoint digest>/` of a state store:
    the local cache folder, or a shared `s3://` prefix (PREFECT_LIPSYNC_STATE_URL) every worker sees."""

    def __init__(self, store: StateStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix.rstrip("/")
        self.uploads = StoreUploadCache(store, f"{self.prefix}/uploads")
        self._lock = threading.Lock()

    @classmethod
    def for_endpoint(cls, base_url: str, store: StateStore | None = None) -> JobJournal:
        digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]
        return cls(store or state_store(), f"journal/{digest}")

    def _key(self, task_uuid: str) -> str:
        return f"{self.prefix}/jobs/{task_uuid.lower()}.json"

    def load(self, task_uuid: str) -> JobRecord:
        text = self.store.read_text(self._key(task_uuid))
        try:
            return JobRecord.model_validate_json(text) if text else JobRecord(task_uuid=task_uuid)
        except ValueError:
            return JobRecord(task_uuid=task_uuid)

    def save(self, record: JobRecord) -> None:
        with self._lock:
            self.store.write_text(self._key(record.task_uuid), record.model_dump_json(indent=1))

    def accepted(self, record: JobRecord, task_uuid: str) -> None:
        """Write down at once that the service has `task_uuid` (it is paid for from here on)."""
        if task_uuid not in record.accepted:
            record.accepted.append(task_uuid)
            self.save(record)
