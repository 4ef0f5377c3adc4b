"""The public Prefect tasks of prefect-lipsync: each step of a lip-sync job, to compose in your own flows.

Each comes as a sync task and an `a`-prefixed async twin (Prefect's convention): the sync one gives a
value in a sync flow, the async one is awaited in an async flow.

    from prefect_lipsync.tasks import build_segments, submit_lipsync_job, wait_for_lipsync_jobs

| step | sync | async | result |
|---|---|---|---|
| probe | `probe_media` | `aprobe_media` | `MediaInfo` |
| build segments | `build_segments` | `abuild_segments` | `list[PlannedJob]` |
| submit | `submit_lipsync_job` | `asubmit_lipsync_job` | `SubmittedJob` |
| wait | `wait_for_lipsync_jobs` | `await_for_lipsync_jobs` | `list[LipsyncJobResult]` |
| download | `download_lipsync_output` | `adownload_lipsync_output` | `str` (where it is) |
| check | `run_quality_checks` | `arun_quality_checks` | `QualityReport` |
"""

from prefect_lipsync.manifest import ManifestError, PlannedJob
from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.pipeline.plan import BudgetExceeded
from prefect_lipsync.pipeline.steps import (
    JobError,
    LipsyncJobResult,
    PreflightFailed,
    QualityCheckFailed,
    SubmittedJob,
)
from prefect_lipsync.quality import QualityReport
from prefect_lipsync.runware.models import Sync3Request, Sync3Result
from prefect_lipsync.tasks.lipsync import (
    adownload_lipsync_output,
    asubmit_lipsync_job,
    await_for_lipsync_jobs,
    download_lipsync_output,
    submit_lipsync_job,
    wait_for_lipsync_jobs,
)
from prefect_lipsync.tasks.media import aprobe_media, probe_media
from prefect_lipsync.tasks.quality import arun_quality_checks, run_quality_checks
from prefect_lipsync.tasks.segments import abuild_segments, build_segments

__all__ = [
    "BudgetExceeded",
    "JobError",
    "LipsyncJobResult",
    "ManifestError",
    "MediaInfo",
    "PlannedJob",
    "PreflightFailed",
    "QualityCheckFailed",
    "QualityReport",
    "SubmittedJob",
    "Sync3Request",
    "Sync3Result",
    "abuild_segments",
    "adownload_lipsync_output",
    "aprobe_media",
    "arun_quality_checks",
    "asubmit_lipsync_job",
    "await_for_lipsync_jobs",
    "build_segments",
    "download_lipsync_output",
    "probe_media",
    "run_quality_checks",
    "submit_lipsync_job",
    "wait_for_lipsync_jobs",
]
