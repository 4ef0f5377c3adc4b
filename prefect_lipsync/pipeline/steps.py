"""A lip-sync job's steps as plain functions: submit, wait, download, check. No Prefect here.

Each is what one public task of `prefect_lipsync.tasks` does, and what `JobRunner` composes, so a
team's own flow and ours run the same code:

    submitted = await submit_job(client, journal, planned_job, settings=settings)   # paid once
    (done,) = await wait_for_jobs(client, journal, [submitted])                      # one poller
    path = await download_output(done.results[0], "out/es.mp4", client=client)      # atomic
    report = check_job_output(path, source=..., job=planned_job)                     # QualityReport

Never paying twice rests on two things: the taskUUID is derived from the job's content (a retry,
a re-run, the same job mapped twice or submitted from two flows sends the same UUID, and the
service answers `conflictTaskUUID` for a UUID it already has), and the journal writes down each
accepted taskUUID the moment the service has it, so a taskUUID it holds is never submitted again.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.media.audio_ops import render_audio_op
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.pipeline.journal import JobJournal
from prefect_lipsync.pipeline.settings import RunSettings
from prefect_lipsync.quality import QualityReport, preflight
from prefect_lipsync.quality.models import QualityThresholds
from prefect_lipsync.quality.planned import check_planned_output
from prefect_lipsync.quality.slots import check_slot
from prefect_lipsync.quality.source_analysis import SourceAnalysis, shared_source_analysis
from prefect_lipsync.runware import errors as runware_errors
from prefect_lipsync.runware.client import RunwareClient, content_task_uuid, with_media_refs
from prefect_lipsync.runware.downloads import DownloadPolicy, download
from prefect_lipsync.runware.errors import (
    AuthError,
    ContentFlagged,
    DownloadError,
    InsufficientCredits,
    JobTimeout,
    RateLimited,
    RequestRejected,
    RunwareError,
    ServiceError,
    TaskFailed,
    TaskNotFound,
    TransientTaskError,
)
from prefect_lipsync.runware.models import Sync3Request, Sync3Result
from prefect_lipsync.runware.uploads import local_path
from prefect_lipsync.storage.refs import is_remote, is_s3

JobInput = PlannedJob | Sync3Request | Mapping[str, Any]
"""What can be submitted: a planned job, a sync-3 request, or its wire dict (as the spec shows it)."""

ErrorKind = Literal[
    "auth", "money", "validation", "rate", "transient", "task_failed", "content_flagged", "timeout",
    "not_found", "download",
]  # fmt: skip


def error_kind(exc: RunwareError) -> ErrorKind:
    """The class of a service error, in the words a person filters on."""
    kinds: list[tuple[type[RunwareError], ErrorKind]] = [
        (AuthError, "auth"),
        (InsufficientCredits, "money"),
        (RequestRejected, "validation"),
        (RateLimited, "rate"),
        (ContentFlagged, "content_flagged"),
        (TransientTaskError, "transient"),
        (TaskFailed, "task_failed"),
        (ServiceError, "transient"),
        (JobTimeout, "timeout"),
        (TaskNotFound, "not_found"),
        (DownloadError, "download"),
    ]
    return next((kind for cls, kind in kinds if isinstance(exc, cls)), "task_failed")


class JobError(BaseModel):
    """A job's failure as the service (or the way to it) said it: classified, with its taskUUID."""

    kind: ErrorKind = Field(description="auth, money, validation, rate, transient, task_failed, ...")
    error_type: str = Field(description="The exception class it came as (AuthError, TaskFailed, ...).")
    code: str = Field(description="The service's error code.")
    message: str = Field(description="The service's message.")
    task_uuid: str | None = Field(default=None, description="The task the error is about.")
    parameter: str | list[str] | None = Field(default=None, description="The request field it names.")

    @classmethod
    def of(cls, exc: RunwareError) -> JobError:
        return cls(
            kind=error_kind(exc),
            error_type=type(exc).__name__,
            code=exc.code,
            message=exc.message,
            task_uuid=exc.task_uuid,
            parameter=exc.parameter,
        )

    def exception(self) -> RunwareError:
        """The error as the exception it came as (for `raise_on_failure`)."""
        found = getattr(runware_errors, self.error_type, None)
        cls = found if isinstance(found, type) and issubclass(found, RunwareError) else RunwareError
        if issubclass(cls, runware_errors.TaskNotKnown):
            cls = TaskNotFound  # its own constructor builds the message; the message is kept here
        return cls(self.message, code=self.code, parameter=self.parameter, task_uuid=self.task_uuid)

    def __str__(self) -> str:
        return str(self.exception())


class PreflightFailed(RuntimeError):
    """Local checks refused a job before anything was uploaded or submitted (nothing paid)."""

    def __init__(self, report: QualityReport, where: str) -> None:
        self.report = report
        failed = "; ".join(c.message for c in report.checks if c.status == "fail")
        super().__init__(f"{where}: pre-flight failed, nothing was uploaded or submitted: {failed}")


class SubmittedJob(BaseModel):
    """A job the service has accepted (paid for): what waiting, downloading and checking need."""

    task_uuid: str = Field(description="The job's taskUUID, derived from its content.")
    number_results: int = Field(default=1, description="Variations the job makes (numberResults).")
    language: str | None = Field(default=None, description="The planned job's language, if any.")
    output_name: str | None = Field(default=None, description="The planned delivery file name, if any.")
    video_duration: float | None = Field(default=None, description="Seconds of output video expected.")
    source: str | None = Field(default=None, description="The source video (path, s3:// or https://).")
    request: Sync3Request = Field(description="The request as sent (uploaded media URLs; no secret).")
    job: PlannedJob | None = Field(default=None, description="The planned job, when one was submitted.")


class LipsyncJobResult(BaseModel):
    """What one submitted job came to: its results, or the classified error that ended it."""

    task_uuid: str = Field(description="The task the results (or the error) belong to.")
    job: SubmittedJob
    results: list[Sync3Result] = Field(default_factory=list, description="One per variation.")
    error: JobError | None = Field(default=None, description="Why the job failed; None when it succeeded.")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def cost_usd(self) -> float | None:
        costs = [r.cost for r in self.results if r.cost is not None]
        return round(sum(costs), 4) if costs else None


# ---------------------------------------------------------------------------------------- submit


def as_request(job: JobInput) -> tuple[Sync3Request, PlannedJob | None]:
    """The sync-3 request of what was given; a wire dict is checked against every rule of the spec."""
    if isinstance(job, PlannedJob):
        return job.request, job
    if isinstance(job, Sync3Request):
        return job, None
    return Sync3Request.model_validate(dict(job)), None


def _input_ref(request: Sync3Request) -> str | None:
    video = request.to_wire().get("inputs", {}).get("video")
    return str(video) if isinstance(video, str) else None


def source_of(request: Sync3Request) -> str | None:
    """The source video as a path, s3:// or https:// ref (a file:// URI becomes its path)."""
    ref = _input_ref(request)
    if ref is None:
        return None
    return str(local_path(ref)) if ref.startswith("file://") else ref


def local_source(source: str) -> Path:
    """The source as a local file: object storage and URLs go through the bounded media cache."""
    if is_remote(source):
        from prefect_lipsync.storage.cache import materialize

        return materialize(source)
    return Path(source)


def local_media(request: Sync3Request) -> dict[str, Path]:
    """Local copies of the request's s3:// media (cached), for the checks that listen to its audio."""
    objects = request.object_refs()
    if not objects:
        return {}
    from prefect_lipsync.storage.cache import local_copies

    return local_copies(objects)


def job_task_uuid(job: JobInput, nonce: str | None = None) -> str:
    """The taskUUID a job is (or will be) submitted under; reads local files: call it off the loop."""
    request, planned = as_request(job)
    rendered = {op.output_uri: op.content_key for op in planned.audio_ops} if planned else {}
    return content_task_uuid(request, nonce, known=rendered)


def source_analysis_for(
    source: str | None, payloads: Sequence[Mapping[str, Any]], thresholds: QualityThresholds
) -> SourceAnalysis | None:
    """The process's shared analysis of a source (one decode per source, whatever step asks first)."""
    if source is None:
        return None
    try:
        return shared_source_analysis(local_source(source), request_payloads=payloads, thresholds=thresholds)
    except (OSError, MediaError):
        return None


def run_preflight(
    request: Sync3Request,
    planned: PlannedJob | None,
    settings: RunSettings,
    *,
    analysis: SourceAnalysis | None = None,
) -> QualityReport:
    """Every local check of a job before it is paid for (the source, the audio, the face, the spec)."""
    from prefect_lipsync.media.probe import probe

    source = source_of(request)
    local = local_source(source) if source else None
    expected_fps: Fraction | None = None
    expected_duration = planned.video_duration if planned else None
    if local is not None:
        try:
            info = probe(local)
            expected_fps = info.video.fps if info.video else None
            expected_duration = expected_duration or info.duration
        except MediaError:
            pass  # pre-flight's own probe says why
        if analysis is None:
            analysis = source_analysis_for(source, [request.to_wire()], settings.quality)
    return preflight(
        request.to_wire(),
        source=local,
        local_media=local_media(request),
        expected_fps=expected_fps,
        expected_duration=expected_duration,
        thresholds=settings.quality,
        source_analysis=analysis,
    )


async def render_planned_audio(planned: PlannedJob) -> list[Path]:
    """The planned job's audio operations (crops, tempo), rendered where its request names them."""
    return [
        await asyncio.to_thread(render_audio_op, op.op, Path(op.output_path).parent)
        for op in planned.audio_ops
    ]


async def submit_job(
    client: RunwareClient,
    journal: JobJournal,
    job: JobInput,
    *,
    settings: RunSettings | None = None,
    nonce: str | None = None,
    upload_endpoint: str | None = None,
    analysis: SourceAnalysis | None = None,
    check_first: bool = True,
) -> SubmittedJob:
    """Render the planned audio, check the job locally, upload its local files once and submit it.

    A job whose taskUUID the journal holds as accepted is not checked or submitted again (it is
    paid for); one the service already has (a retry, a second flow) counts as accepted. Raises
    PreflightFailed (nothing uploaded or submitted), a RunwareError (classified), or MediaError.
    `upload_endpoint`: a presigned PUT URL where the service stores the result (not part of the UUID).
    """
    settings = settings or RunSettings()
    request, planned = as_request(job)
    base_uuid = await asyncio.to_thread(job_task_uuid, job, nonce)
    record = await asyncio.to_thread(journal.load, base_uuid)
    paid = base_uuid in record.accepted
    if planned is not None and planned.audio_ops:  # checks listen to the audio as it will be uploaded
        await render_planned_audio(planned)
    if check_first and not paid:
        where = f"{planned.language} (task {base_uuid})" if planned else f"task {base_uuid}"
        report = await asyncio.to_thread(run_preflight, request, planned, settings, analysis=analysis)
        if report.verdict == "fail":
            raise PreflightFailed(report, where)
    prepared = await prepare_upload(client, request.model_copy(update={"task_uuid": base_uuid}), settings)
    if upload_endpoint:
        prepared = prepared.model_copy(update={"upload_endpoint": upload_endpoint})
    if not paid:
        deadline = asyncio.get_running_loop().time() + settings.job_timeout_s
        await client.submit(prepared, deadline=deadline)
        await asyncio.to_thread(journal.accepted, record, base_uuid)
    return SubmittedJob(
        task_uuid=base_uuid,
        number_results=prepared.number_results,
        language=planned.language if planned else None,
        output_name=planned.output_name if planned else None,
        video_duration=planned.video_duration if planned else None,
        source=source_of(request),
        request=prepared,
        job=planned,
    )


async def prepare_upload(client: RunwareClient, request: Sync3Request, settings: RunSettings) -> Sync3Request:
    """Local files uploaded (once per content), s3:// objects presigned for the service to fetch."""
    from prefect_lipsync.storage.listing import presign_refs

    uploaded = await client.upload_local_refs(request)
    objects = uploaded.object_refs()
    if objects:
        # Presigned for the URL lifetime plus the job's own deadline: the service uses them later.
        expires = int(settings.ttl_s + settings.job_timeout_s)
        urls = await asyncio.to_thread(lambda: presign_refs(objects, expires_s=expires))
        uploaded = with_media_refs(uploaded, urls)
    return uploaded


# ------------------------------------------------------------------------------------------ wait


async def wait_for_job(
    client: RunwareClient,
    journal: JobJournal,
    job: SubmittedJob,
    *,
    timeout_s: float | None = None,
    max_task_retries: int = 1,
) -> LipsyncJobResult:
    """Wait for one accepted job on the client's shared poller; an error is returned, not raised.

    A task that fails transiently is resubmitted under a derived taskUUID (a new paid task, written
    down in the journal the moment it is accepted) up to `max_task_retries` times. The job's own
    taskUUID is never submitted here: it was accepted.
    """
    record = await asyncio.to_thread(journal.load, job.task_uuid)
    last = {"task_uuid": job.task_uuid}

    def accepted(task_uuid: str) -> None:
        last["task_uuid"] = task_uuid
        journal.accepted(record, task_uuid)

    try:
        results = await client.run_task(
            job.request.model_copy(update={"task_uuid": job.task_uuid}),
            timeout=timeout_s,
            max_task_retries=max_task_retries,
            accepted={*record.accepted, job.task_uuid},
            on_accepted=accepted,
        )
    except RunwareError as exc:
        return LipsyncJobResult(task_uuid=exc.task_uuid or last["task_uuid"], job=job, error=JobError.of(exc))
    task_uuid = results[0].task_uuid if results else last["task_uuid"]
    return LipsyncJobResult(task_uuid=task_uuid, job=job, results=results)


async def wait_for_jobs(
    client: RunwareClient,
    journal: JobJournal,
    jobs: Sequence[SubmittedJob],
    *,
    timeout_s: float | None = None,
    max_task_retries: int = 1,
) -> list[LipsyncJobResult]:
    """Wait for every job at once: one batched poll per tick for all of them; results in order."""
    return list(
        await asyncio.gather(
            *(
                wait_for_job(client, journal, j, timeout_s=timeout_s, max_task_retries=max_task_retries)
                for j in jobs
            )
        )
    )


# -------------------------------------------------------------------------------------- download


def _marker(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.video-uuid")


async def download_output(
    result: Sync3Result,
    destination: str | Path,
    *,
    expected_duration_s: float | None = None,
    client: RunwareClient | None = None,
) -> str:
    """One result's video to a local path or an `s3://` key, complete and atomic; returns where it is.

    A local file that already holds this result (its videoUUID written beside it) is not fetched
    again. The result URL is a third-party link: it is fetched without the API key.
    """
    where = str(destination)
    if is_s3(where):
        from prefect_lipsync.storage.publish import publish_file

        with tempfile.TemporaryDirectory(prefix="lipsync-download-") as folder:
            local = Path(folder) / Path(where).name
            await _fetch(result, local, expected_duration_s, client)
            return await asyncio.to_thread(publish_file, local, where, content_type="video/mp4")
    dest = Path(where)
    marker = _marker(dest)
    if result.video_uuid and dest.exists() and _read(marker) == result.video_uuid:
        return str(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    await _fetch(result, dest, expected_duration_s, client)
    await asyncio.to_thread(write_text_atomic, marker, result.video_uuid or "")
    return str(dest)


async def _fetch(
    result: Sync3Result, dest: Path, expected_duration_s: float | None, client: RunwareClient | None
) -> None:
    if client is not None:
        await client.download(result, dest, expected_duration_s=expected_duration_s)
        return
    import httpx

    from prefect_lipsync.tls import shared_tls_context

    async with httpx.AsyncClient(
        follow_redirects=True, timeout=httpx.Timeout(60.0), verify=shared_tls_context()
    ) as http:
        await download(http, result, dest, policy=DownloadPolicy(), expected_duration_s=expected_duration_s)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


# ----------------------------------------------------------------------------------------- check


def check_job_output(
    output: str | Path,
    *,
    source: str | Path,
    job: PlannedJob | Mapping[str, Any] | None = None,
    thresholds: QualityThresholds | None = None,
    result: Sync3Result | None = None,
    lipsync_expected: bool | None = None,
) -> QualityReport:
    """Every check of an output against its source (and its planned job): the verdict `prefect-lipsync
    check --plan` gives. `result` says whether the service flagged it and whether the emulator made it
    (no lip movement expected); without it, lip movement is expected unless `lipsync_expected` says no.
    """
    t = thresholds or QualityThresholds()
    planned: PlannedJob | Mapping[str, Any] = job if job is not None else {}
    request = job.request if isinstance(job, PlannedJob) else None
    payloads = [request.to_wire()] if request is not None else []
    expected = (
        lipsync_expected if lipsync_expected is not None else not (result is not None and result.emulated)
    )
    with check_slot():  # the slot before the source analysis's lock: never one waiting on the other
        analysis = source_analysis_for(str(source), payloads, t)
        return check_planned_output(
            Path(output),
            local_source(str(source)),
            planned,
            t,
            nsfw_flag=result.nsfw_content if result is not None else None,
            lipsync_expected=expected,
            source_analysis=analysis,
            local_media=local_media(request) if request is not None else None,
            quarantine_flagged=False,  # delivery decides where every output goes
        )


class QualityCheckFailed(RuntimeError):
    """An output failed its checks (raised only where asked: the report is what a caller usually wants)."""

    def __init__(self, report: QualityReport) -> None:
        self.report = report
        failed = "; ".join(f"{c.name}: {c.message}" for c in report.checks if c.status == "fail")
        super().__init__(f"{report.output}: quality checks failed: {failed}")

    def __reduce__(self) -> tuple[object, ...]:
        return (QualityCheckFailed, (self.report,))
