"""The paid part as tasks: submit a job (once, whatever retries), wait for many with one poller,
download a result. Each comes as a sync task and an `a`-prefixed async twin."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.pipeline.journal import JobJournal
from prefect_lipsync.pipeline.settings import RunSettings
from prefect_lipsync.pipeline.steps import (
    LipsyncJobResult,
    SubmittedJob,
    download_output,
    submit_job,
    wait_for_jobs,
)
from prefect_lipsync.runware.models import Sync3Request, Sync3Result
from prefect_lipsync.tasks.clients import task_client
from prefect_lipsync.tasks.dispatch import dispatch_to, run_sync
from prefect_lipsync.tasks.endpoint import task_credentials

# No Prefect cache on any of them: the journal and the content taskUUID make a retry or re-run free.
SUBMIT_NAME = "submit-lipsync-job"
SUBMIT_DESCRIPTION = (
    "Render the planned audio, check the job locally, upload its files once and submit it (paid once)."
)
WAIT_NAME = "wait-for-lipsync-jobs"
WAIT_DESCRIPTION = "Wait for submitted sync-3 jobs: one batched poll per tick for all of them."
DOWNLOAD_NAME = "download-lipsync-output"
DOWNLOAD_DESCRIPTION = "Download one result video to a local path or an s3:// key, complete and atomic."


async def _submit(
    job: PlannedJob | Sync3Request | dict[str, Any],
    credentials: RunwareCredentials | None,
    settings: RunSettings | None,
    rerun_nonce: str | None,
    upload_endpoint: str | None,
) -> SubmittedJob:
    creds = task_credentials(credentials)
    settings = settings or RunSettings()
    async with task_client(creds) as client:
        submitted = await submit_job(
            client,
            JobJournal.for_endpoint(creds.base_url),
            job,
            settings=settings,
            nonce=rerun_nonce,
            upload_endpoint=upload_endpoint,
        )
    get_run_logger().info("%s: accepted as task %s", submitted.language or "job", submitted.task_uuid)
    return submitted


@task(name=SUBMIT_NAME, description=SUBMIT_DESCRIPTION, cache_policy=NO_CACHE)
async def asubmit_lipsync_job(
    job: PlannedJob | Sync3Request | dict[str, Any],
    credentials: RunwareCredentials | None = None,
    *,
    settings: RunSettings | None = None,
    rerun_nonce: str | None = None,
    upload_endpoint: str | None = None,
) -> SubmittedJob:
    """Submit one sync-3 job, paid at most once (async twin of `submit_lipsync_job`).

    Args:
        job: A `PlannedJob` from `build_segments`, a `Sync3Request`, or its wire dict.
        credentials: A `RunwareCredentials` block; None: `RUNWARE_API_KEY`/`RUNWARE_BASE_URL`, else the
            local emulator (dub previews, nothing paid).
        settings: Run settings or a `LipsyncSettings` block (job timeout, quality thresholds of pre-flight).
        rerun_nonce: Set to pay again, deliberately, for a job done once; leave empty to resume instead.
        upload_endpoint: A presigned PUT URL where the service stores the result (optional).

    Returns:
        The `SubmittedJob`, with `.task_uuid`: the job's content-derived taskUUID.

    Raises:
        PreflightFailed: Local checks refused the job; nothing was uploaded or submitted.
        RunwareError: The service refused it (AuthError, InsufficientCredits, ValidationError, ...).

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import abuild_segments, asubmit_lipsync_job

        @flow
        async def submit_all(manifest: str) -> list[str]:
            jobs = await abuild_segments(manifest)
            return [(await asubmit_lipsync_job(job)).task_uuid for job in jobs]
        ```
    """
    return await _submit(job, credentials, settings, rerun_nonce, upload_endpoint)


@task(name=SUBMIT_NAME, description=SUBMIT_DESCRIPTION, cache_policy=NO_CACHE)
@dispatch_to(asubmit_lipsync_job)
def submit_lipsync_job(
    job: PlannedJob | Sync3Request | dict[str, Any],
    credentials: RunwareCredentials | None = None,
    *,
    settings: RunSettings | None = None,
    rerun_nonce: str | None = None,
    upload_endpoint: str | None = None,
) -> SubmittedJob:
    """Submit one sync-3 job, paid at most once.

    It renders the planned audio, runs the local checks (nothing is paid for a doomed job), uploads
    local files once per content and submits under a taskUUID derived from the job's content: a retry
    of this task, a re-run of the flow, the same job mapped twice or submitted from two flows is
    accepted once (the journal remembers it; the service answers `conflictTaskUUID` otherwise).

    Args:
        job: A `PlannedJob` from `build_segments`, a `Sync3Request`, or its wire dict.
        credentials: A `RunwareCredentials` block; None: `RUNWARE_API_KEY`/`RUNWARE_BASE_URL`, else the
            local emulator (dub previews, nothing paid).
        settings: Run settings or a `LipsyncSettings` block (job timeout, quality thresholds of pre-flight).
        rerun_nonce: Set to pay again, deliberately, for a job done once; leave empty to resume instead.
        upload_endpoint: A presigned PUT URL where the service stores the result (optional).

    Returns:
        The `SubmittedJob`, with `.task_uuid`: the job's content-derived taskUUID.

    Raises:
        PreflightFailed: Local checks refused the job; nothing was uploaded or submitted.
        RunwareError: The service refused it (AuthError, InsufficientCredits, ValidationError, ...).

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import build_segments, submit_lipsync_job

        @flow
        def submit_all(manifest: str) -> list[str]:
            return [submit_lipsync_job(job).task_uuid for job in build_segments(manifest)]
        ```
    """
    return run_sync(_submit(job, credentials, settings, rerun_nonce, upload_endpoint))


async def _wait(
    jobs: SubmittedJob | list[SubmittedJob],
    credentials: RunwareCredentials | None,
    timeout_s: float | None,
    max_task_retries: int,
    raise_on_failure: bool,
) -> list[LipsyncJobResult]:
    creds = task_credentials(credentials)
    many = [jobs] if isinstance(jobs, SubmittedJob) else list(jobs)
    limit = timeout_s or creds.job_timeout_s or RunSettings().job_timeout_s
    async with task_client(creds) as client:
        done = await wait_for_jobs(
            client,
            JobJournal.for_endpoint(creds.base_url),
            many,
            timeout_s=limit,
            max_task_retries=max_task_retries,
        )
    logger = get_run_logger()
    for result in done:
        if result.error is not None:
            logger.error("task %s failed: %s", result.task_uuid, result.error)
    failed = [r for r in done if r.error is not None]
    if raise_on_failure and failed:
        assert failed[0].error is not None
        raise failed[0].error.exception()
    return done


@task(name=WAIT_NAME, description=WAIT_DESCRIPTION, cache_policy=NO_CACHE)
async def await_for_lipsync_jobs(
    jobs: SubmittedJob | list[SubmittedJob],
    credentials: RunwareCredentials | None = None,
    *,
    timeout_s: float | None = None,
    max_task_retries: int = 1,
    raise_on_failure: bool = False,
) -> list[LipsyncJobResult]:
    """Wait for submitted jobs, one batched poll per tick for all (async twin of `wait_for_lipsync_jobs`).

    Args:
        jobs: One `SubmittedJob` or a list of them.
        credentials: The block they were submitted with (None: as `submit_lipsync_job`).
        timeout_s: The most the whole wait may take, in seconds (default: the block's job timeout, else 1 h).
        max_task_retries: Times a job the provider failed transiently is resubmitted (each a new paid task).
        raise_on_failure: Raise the first failed job's error instead of returning it in `.error`.

    Returns:
        One `LipsyncJobResult` per job, in the order given: `.task_uuid`, `.results` (one `Sync3Result`
        per variation) and `.error` (the classified error of a job that failed).

    Raises:
        RunwareError: With `raise_on_failure`, the first failed job's error (AuthError, TaskFailed, ...).

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import abuild_segments, asubmit_lipsync_job, await_for_lipsync_jobs

        @flow
        async def run(manifest: str) -> list[str]:
            submitted = [await asubmit_lipsync_job(job) for job in await abuild_segments(manifest)]
            return [r.results[0].video_url for r in await await_for_lipsync_jobs(submitted) if r.ok]
        ```
    """
    return await _wait(jobs, credentials, timeout_s, max_task_retries, raise_on_failure)


@task(name=WAIT_NAME, description=WAIT_DESCRIPTION, cache_policy=NO_CACHE)
@dispatch_to(await_for_lipsync_jobs)
def wait_for_lipsync_jobs(
    jobs: SubmittedJob | list[SubmittedJob],
    credentials: RunwareCredentials | None = None,
    *,
    timeout_s: float | None = None,
    max_task_retries: int = 1,
    raise_on_failure: bool = False,
) -> list[LipsyncJobResult]:
    """Wait for submitted jobs: one batched poll per tick for all of them, one result per job.

    A job that fails does not lose the others' results: its `.error` says why (auth, money,
    validation, rate, transient, task_failed, content_flagged, timeout), with its task UUID.

    Args:
        jobs: One `SubmittedJob` or a list of them.
        credentials: The block they were submitted with (None: as `submit_lipsync_job`).
        timeout_s: The most the whole wait may take, in seconds (default: the block's job timeout, else 1 h).
        max_task_retries: Times a job the provider failed transiently is resubmitted (each a new paid task).
        raise_on_failure: Raise the first failed job's error instead of returning it in `.error`.

    Returns:
        One `LipsyncJobResult` per job, in the order given.

    Raises:
        RunwareError: With `raise_on_failure`, the first failed job's error (AuthError, TaskFailed, ...).

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import build_segments, submit_lipsync_job, wait_for_lipsync_jobs

        @flow
        def run(manifest: str) -> list[str]:
            submitted = [submit_lipsync_job(job) for job in build_segments(manifest)]
            return [r.task_uuid for r in wait_for_lipsync_jobs(submitted, raise_on_failure=True)]
        ```
    """
    return run_sync(_wait(jobs, credentials, timeout_s, max_task_retries, raise_on_failure))


@task(name=DOWNLOAD_NAME, description=DOWNLOAD_DESCRIPTION, cache_policy=NO_CACHE)
async def adownload_lipsync_output(
    result: Sync3Result, destination: str, *, expected_duration_s: float | None = None
) -> str:
    """Download one result's video (async twin of `download_lipsync_output`).

    Args:
        result: One `Sync3Result` (from `LipsyncJobResult.results`).
        destination: A local file path or an `s3://bucket/key`.
        expected_duration_s: The video's length; a download sent without a Content-Length is complete
            only if it decodes to this length.

    Returns:
        Where the video is (the destination).

    Raises:
        DownloadError: The result could not be fetched whole (nothing is left at the destination).

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import adownload_lipsync_output

        @flow
        async def fetch(result) -> str:
            return await adownload_lipsync_output(result, "out/es.mp4")
        ```
    """
    return await download_output(result, destination, expected_duration_s=expected_duration_s)


@task(name=DOWNLOAD_NAME, description=DOWNLOAD_DESCRIPTION, cache_policy=NO_CACHE)
@dispatch_to(adownload_lipsync_output)
def download_lipsync_output(
    result: Sync3Result, destination: str, *, expected_duration_s: float | None = None
) -> str:
    """Download one result's video to a local path or an `s3://` key, complete and atomic.

    The file appears at the destination only once every byte arrived; a local file that already
    holds this result is not fetched again. The result URL is fetched without the API key.

    Args:
        result: One `Sync3Result` (from `LipsyncJobResult.results`).
        destination: A local file path or an `s3://bucket/key`.
        expected_duration_s: The video's length; a download sent without a Content-Length is complete
            only if it decodes to this length.

    Returns:
        Where the video is (the destination).

    Raises:
        DownloadError: The result could not be fetched whole (nothing is left at the destination).

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import download_lipsync_output

        @flow
        def fetch(result) -> str:
            return download_lipsync_output(result, "out/es.mp4")
        ```
    """
    return run_sync(download_output(result, destination, expected_duration_s=expected_duration_s))
