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
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.media.cache import default_cache_dir
from prefect_lipsync.pipeline.outcome import LanguageOutput
from prefect_lipsync.runware.models import MediaUpload

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


class DiskUploadCache:
    """The client's upload cache on disk: content hash -> the service's media UUID and URL."""

    def __init__(self, folder: Path, ttl_s: float = UPLOAD_TTL_S) -> None:
        self.folder, self.ttl_s = folder, ttl_s

    def get(self, sha256: str) -> MediaUpload | None:
        path = self.folder / f"{sha256}.json"
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if time.time() - float(entry["at"]) > self.ttl_s:
                return None
            return MediaUpload.model_validate(entry["upload"])
        except (OSError, ValueError, KeyError, ValidationError):
            return None

    def put(self, sha256: str, upload: MediaUpload) -> None:
        body = {"at": time.time(), "upload": upload.model_dump(mode="json", by_alias=True)}
        write_text_atomic(self.folder / f"{sha256}.json", json.dumps(body))


class JobJournal:
    """Job records and uploads of one endpoint, in `<cache>/journal/<endpoint digest>/`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uploads = DiskUploadCache(folder / "uploads")
        self._lock = threading.Lock()

    @classmethod
    def for_endpoint(cls, base_url: str, root: Path | None = None) -> JobJournal:
        digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]
        return cls((root or default_cache_dir()) / "journal" / digest)

    def _path(self, task_uuid: str) -> Path:
        return self.folder / "jobs" / f"{task_uuid.lower()}.json"

    def load(self, task_uuid: str) -> JobRecord:
        try:
            return JobRecord.model_validate_json(self._path(task_uuid).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return JobRecord(task_uuid=task_uuid)

    def save(self, record: JobRecord) -> None:
        with self._lock:
            write_text_atomic(self._path(record.task_uuid), record.model_dump_json(indent=1))

    def accepted(self, record: JobRecord, task_uuid: str) -> None:
        """Write down at once that the service has `task_uuid` (it is paid for from here on)."""
        if task_uuid not in record.accepted:
            record.accepted.append(task_uuid)
            self.save(record)

    def forget_outcome(self, record: JobRecord) -> None:
        record.outcome = None
        self.save(record)
