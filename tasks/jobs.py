"""One task run per lip-sync job: the core's JobRunner inside, its steps logged and evented.

Task runs are where they buy something: a person sees one run per language with its logs, and the
paid step holds a slot of the team's global concurrency limit. Resume needs no Prefect cache: the
runner's journal remembers uploads, accepted (paid) tasks and delivered outcomes on disk. If the
Prefect API fails to track a job, the job still runs (and resumes) without a task run.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Self, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.asyncio import concurrency
from prefect.events import emit_event

from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.pipeline import JobRunner, LanguageOutput, RunPlan, Step
from prefect_lipsync.tasks.resilience import PREFECT_API_ERRORS, with_api_retries

T = TypeVar("T")


def emit_job_event(name: str, step: Step, payload: dict[str, Any]) -> None:
    emit_event(
        event=f"prefect-lipsync.job.{name}",
        resource={
            "prefect.resource.id": f"prefect-lipsync.job.{step.task_uuid}",
            "prefect-lipsync.language": step.language,
        },
        payload=payload,
    )


@contextlib.asynccontextmanager
async def global_slot(name: str | None) -> AsyncIterator[None]:
    """A slot of a Prefect global concurrency limit shared by all workers, when one is configured."""
    if not name:
        yield
        return
    async with concurrency(name, occupy=1):
        yield


class PrefectStepHook:
    """The runner's steps as Prefect sees them: a log line each, events for the paid step, a slot."""

    def __init__(self, global_concurrency_limit: str | None) -> None:
        self.global_concurrency_limit = global_concurrency_limit

    async def __call__(self, step: Step, work: Callable[[], Awaitable[T]]) -> T:
        logger = get_run_logger()
        logger.info("%s: %s", step.language, step.name)
        if step.name != "submit-and-wait":
            return await work()
        async with global_slot(self.global_concurrency_limit):
            emit_job_event("submitted", step, dict(step.detail))
            try:
                value = await work()
            except Exception as exc:
                emit_job_event("failed", step, {"error": exc.__class__.__name__})
                raise
        emit_job_event("completed", step, {})
        return value


class HandedByKey:
    """What a flow run hands its task runs by key, not as a parameter, which Prefect would walk and
    record (credentials and all): registered while the `with` block runs, in one registry per class
    and process."""

    key: str
    _open: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._open = {}

    def __enter__(self) -> Self:
        self._open[self.key] = self
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.pop(self.key, None)

    @classmethod
    def get(cls, key: str) -> Self:
        found: Self = cls._open[key]
        return found


class InProcessJobs(HandedByKey):
    """The runner and plan of a flow run, handed to its job task runs by key."""

    def __init__(self, runner: JobRunner, plan: RunPlan) -> None:
        self.key = str(uuid.uuid4())
        self.runner, self.plan = runner, plan

    async def run(self, job: PlannedJob) -> LanguageOutput:
        """The job as a task run; should Prefect's API fail around it, the job runs (or resumes) without one."""
        try:
            named = lipsync_job.with_options(task_run_name=f"lipsync-{self.plan.name}-{job.language}")
            return await with_api_retries(lambda: named(self.key, job.language))
        except PREFECT_API_ERRORS as exc:
            get_run_logger().warning(
                "%s: the Prefect API failed around the job's task run (%s); running it without one. Its "
                "journal keeps it from uploading or paying twice.",
                job.language,
                exc,
            )
            return await self.runner.run(job, self.plan)


@task(
    name="lipsync-job",
    description="One language: pre-flight, upload, submit, wait, download, check and deliver (resumable).",
    cache_policy=NO_CACHE,  # the runner's journal is what makes a re-run free
)
async def lipsync_job(run_key: str, language: str) -> LanguageOutput:
    """Run the job of `language` of the flow run's plan with the flow run's runner."""
    jobs = InProcessJobs.get(run_key)
    (job,) = (j for j in jobs.plan.jobs if j.language == language)
    output = await jobs.runner.run(job, jobs.plan)
    logger = get_run_logger()
    for warning in output.warnings:
        logger.warning("%s: %s", language, warning)
    if output.error:
        logger.error("%s: %s", language, output.error)
    return output
