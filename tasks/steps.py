"""A job's steps as the public tasks, for the core's JobRunner: what a flow of ours runs is what a team's
own flow imports, and each step (submit, wait, download, check) is a task run a person can open.

Clients are never task parameters here: the public tasks find the flow's shared client (one poller for
all its jobs) by credentials on the flow's event loop. Should the Prefect API fail around a task run,
the step runs without one: the journal keeps it from uploading or paying twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from prefect import get_run_logger
from prefect.concurrency.asyncio import concurrency

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.pipeline.runner import CoreSteps
from prefect_lipsync.pipeline.settings import RunSettings
from prefect_lipsync.pipeline.steps import LipsyncJobResult, SubmittedJob
from prefect_lipsync.quality import QualityReport
from prefect_lipsync.runware.client import RunwareClient
from prefect_lipsync.runware.models import Sync3Result
from prefect_lipsync.tasks.events import emit_job_event
from prefect_lipsync.tasks.lipsync import (
    adownload_lipsync_output,
    asubmit_lipsync_job,
    await_for_lipsync_jobs,
)
from prefect_lipsync.tasks.quality import arun_quality_checks
from prefect_lipsync.tasks.resilience import PREFECT_API_ERRORS, with_api_retries

T = TypeVar("T")


@contextlib.asynccontextmanager
async def global_slot(name: str | None) -> AsyncIterator[None]:
    """A slot of a Prefect global concurrency limit shared by all workers, when one is configured."""
    if not name:
        yield
        return
    async with concurrency(name, occupy=1):
        yield


class TaskSteps:
    """Each step of a job as a task run of the public task, named after its run and language."""

    def __init__(
        self,
        client: RunwareClient,
        credentials: RunwareCredentials,
        settings: RunSettings,
        *,
        run_name: str,
        nonce: str | None = None,
        offline: bool = False,
        global_concurrency_limit: str | None = None,
    ) -> None:
        self.credentials, self.settings, self.run_name = credentials, settings, run_name
        self.nonce, self.offline, self.limit = nonce, offline, global_concurrency_limit
        # The same steps without task runs, for when the Prefect API cannot track one.
        from prefect_lipsync.pipeline.journal import JobJournal

        journal = JobJournal.for_endpoint(credentials.base_url)
        self.plain = CoreSteps(client, journal, settings, nonce=nonce, offline=offline)

    def _name(self, verb: str, language: str) -> str:
        return f"{verb}-{self.run_name}-{language}"

    async def _as_task(
        self, call: Callable[[], Awaitable[T]], plain: Callable[[], Awaitable[T]], what: str
    ) -> T:
        try:
            return await with_api_retries(call)
        except PREFECT_API_ERRORS as exc:
            get_run_logger().warning(
                "%s: the Prefect API failed around its task run (%s); running it without one. The journal "
                "keeps it from uploading or paying twice.",
                what,
                exc,
            )
            return await plain()

    @contextlib.asynccontextmanager
    async def in_flight(self, job: PlannedJob, task_uuid: str) -> AsyncIterator[None]:
        async with global_slot(self.limit):
            yield

    async def submit(self, job: PlannedJob, *, upload_endpoint: str | None) -> SubmittedJob:
        named = asubmit_lipsync_job.with_options(task_run_name=self._name("submit", job.language))
        submitted = await self._as_task(
            lambda: named(
                job,
                self.credentials,
                settings=self.settings,
                rerun_nonce=self.nonce,
                upload_endpoint=upload_endpoint,
            ),
            lambda: self.plain.submit(job, upload_endpoint=upload_endpoint),
            f"{job.language}: submit",
        )
        emit_job_event(
            "submitted", job.language, submitted.task_uuid, {"files": len(job.request.local_refs())}
        )
        return submitted

    async def wait(self, job: SubmittedJob) -> LipsyncJobResult:
        language = job.language or "job"
        named = await_for_lipsync_jobs.with_options(task_run_name=self._name("wait", language))
        (waited,) = await self._as_task(
            lambda: named(
                [job],
                self.credentials,
                timeout_s=self.settings.job_timeout_s,
                max_task_retries=self.settings.max_task_retries,
            ),
            lambda: _one(self.plain.wait(job)),
            f"{language}: wait",
        )
        if waited.error is not None:
            emit_job_event("failed", language, waited.task_uuid, {"error": waited.error.error_type})
        else:
            emit_job_event("completed", language, waited.task_uuid, {})
        return waited

    async def download(
        self, result: Sync3Result, dest: Path, *, language: str, expected_duration_s: float
    ) -> Path:
        named = adownload_lipsync_output.with_options(task_run_name=self._name("download", language))
        where = await self._as_task(
            lambda: named(result, str(dest), expected_duration_s=expected_duration_s),
            lambda: _as_str(
                self.plain.download(result, dest, language=language, expected_duration_s=expected_duration_s)
            ),
            f"{language}: download",
        )
        return Path(where)

    async def check(
        self, output: Path, *, job: PlannedJob, result: Sync3Result, source: str
    ) -> QualityReport:
        named = arun_quality_checks.with_options(task_run_name=self._name("check", job.language))

        async def checked() -> QualityReport:
            # A failed check is a failed task run, not a log line inside one; its report still counts.
            # Called from async code, an async task returns a coroutine of its state (typed as the state).
            running = named(
                str(output),
                source=source,
                job=job,
                result=result,
                settings=self.settings,
                lipsync_expected=not (self.offline or result.emulated),
                create_artifact=False,  # the flow reports each output once delivered
                fail_task_run=True,
                return_state=True,
            )
            state = await cast("Awaitable[State[QualityReport]]", running)
            report = await state.aresult(raise_on_failure=False)
            if not isinstance(report, QualityReport):  # an exception of the checks themselves
                raise report if isinstance(report, BaseException) else RuntimeError(str(report))
            return report

        return await self._as_task(
            checked,
            lambda: self.plain.check(output, job=job, result=result, source=source),
            f"{job.language}: check",
        )


async def _one(waiting: Awaitable[LipsyncJobResult]) -> list[LipsyncJobResult]:
    return [await waiting]


async def _as_str(downloading: Awaitable[Path]) -> str:
    return str(await downloading)
