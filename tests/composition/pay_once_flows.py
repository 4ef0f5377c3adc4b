"""A team's own flows that retry, re-run and map the submit: every job must be accepted (paid) once.

Run as `python pay_once_flows.py retried|mapped MANIFEST MARKER_DIR`; imports only public names.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prefect import flow, task

from prefect_lipsync.tasks import SubmittedJob, build_segments, submit_lipsync_job, wait_for_lipsync_jobs


@task(retries=2, retry_delay_seconds=0)
def submit_then_fail_once(job: object, marker: str) -> SubmittedJob:
    """The team's own step around our submit task: it fails once after the service accepted the job."""
    submitted = submit_lipsync_job(job)
    flag = Path(marker)
    if not flag.exists():
        flag.write_text("failed once")
        raise RuntimeError("a fault after the service accepted the job")
    return submitted


@flow(name="retried-submits", retries=1, retry_delay_seconds=0)
def retried(manifest: str, marker_dir: str) -> list[str]:
    jobs = build_segments(manifest)
    submitted = [submit_then_fail_once(job, f"{marker_dir}/{job.language}.task") for job in jobs]
    flag = Path(marker_dir) / "flow"
    if not flag.exists():  # a fault of the flow's own after every submit: Prefect retries the whole flow
        flag.write_text("failed once")
        raise RuntimeError("the flow failed after its submits")
    return [r.task_uuid for r in wait_for_lipsync_jobs(submitted, raise_on_failure=True)]


@flow(name="mapped-twice")
def mapped_twice(manifest: str) -> list[str]:
    jobs = build_segments(manifest)
    submitted = [future.result() for future in submit_lipsync_job.map(jobs + jobs)]
    done = wait_for_lipsync_jobs(submitted, raise_on_failure=True)
    return sorted({r.task_uuid for r in done})


if __name__ == "__main__":
    mode, manifest, marker_dir = sys.argv[1:4]
    uuids = retried(manifest, marker_dir) if mode == "retried" else mapped_twice(manifest)
    print(json.dumps(uuids))
