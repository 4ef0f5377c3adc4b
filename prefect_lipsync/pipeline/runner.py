"""The job runner: one planned job from pre-flight to a delivered, checked output.

The steps are the public ones (`prefect_lipsync.pipeline.steps`; the Prefect layer hands in the
public tasks that wrap them, so each step is a task run), each also passed through a `StepHook`
that can log it, time it or stop it:

    submit (render audio, pre-flight, upload, submit) -> wait -> download -> check -> deliver

Resume is the runner's own business, not the orchestrator's: the taskUUID comes from the job's
content, uploads are remembered by content hash, and the journal writes down each taskUUID the
moment the service accepts it (paid) and the outcome once delivered. A re-run after a crash uploads
nothing again, submits nothing again, and delivers what was paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.pipeline.delivery import (
    DeliveryPolicy,
    Settled,
    failed_checks,
    quarantine_note_of,
    settle,
    staging_path,
)
from prefect_lipsync.pipeline.destination import Destination, ref_exists, remove_objects
from prefect_lipsync.pipeline.final_mix import mix_for_delivery
from prefect_lipsync.pipeline.journal import JobJournal
from prefect_lipsync.pipeline.outcome import LanguageOutput
from prefect_lipsync.pipeline.plan import RunPlan
from prefect_lipsync.pipeline.settings import RunSettings
from prefect_lipsync.pipeline.steps import (
    LipsyncJobResult,
    PreflightFailed,
    SubmittedJob,
    check_job_output,
    download_output,
    job_task_uuid,
    source_analysis_for,
    submit_job,
    wait_for_job,
)
from prefect_lipsync.pipeline.steps import local_source as local_copy_of
from prefect_lipsync.quality import QualityReport, write_pictures
from prefect_lipsync.quality.bestof import choose_best
from prefect_lipsync.quality.source_analysis import SourceAnalysis
from prefect_lipsync.runware.client import RunwareClient
from prefect_lipsync.runware.errors import RunwareError
from prefect_lipsync.runware.models import Sync3Result

log = logging.getLogger("prefect_lipsync.pipeline")

T = TypeVar("T")
StepName = Literal["submit", "wait", "download", "check", "deliver"]


@dataclass(frozen=True)
class Step:
    """What the hook is told about a step: which, for which language, and the job's taskUUID."""

    name: StepName
    language: str
    task_uuid: str
    detail: dict[str, Any] = field(default_factory=dict)


class StepHook(Protocol):
    """Runs `work` (one step) on the caller's terms and returns its value."""

    async def __call__(self, step: Step, work: Callable[[], Awaitable[T]]) -> T: ...


async def run_plain(step: Step, work: Callable[[], Awaitable[T]]) -> T:
    """The hook with no orchestrator: just run the step."""
    return await work()


class JobSteps(Protocol):
    """Who does each step of a job: the core functions here, the public Prefect tasks in a flow."""

    def in_flight(self, job: PlannedJob, task_uuid: str) -> AbstractAsyncContextManager[None]:
        """Held from the submit to the end of the wait (a team's concurrency slot, events)."""
        ...

    async def submit(self, job: PlannedJob, *, upload_endpoint: str | None) -> SubmittedJob: ...

    async def wait(self, job: SubmittedJob) -> LipsyncJobResult: ...

    async def download(
        self, result: Sync3Result, dest: Path, *, language: str, expected_duration_s: float
    ) -> Path: ...

    async def check(
        self, output: Path, *, job: PlannedJob, result: Sync3Result, source: str
    ) -> QualityReport: ...


class CoreSteps:
    """The steps as the core's plain functions, on the runner's client and journal (the CLI's way)."""

    def __init__(
        self,
        client: RunwareClient,
        journal: JobJournal,
        settings: RunSettings,
        *,
        nonce: str | None = None,
        offline: bool = False,
    ) -> None:
        self.client, self.journal, self.settings = client, journal, settings
        self.nonce, self.offline = nonce, offline

    @contextlib.asynccontextmanager
    async def in_flight(self, job: PlannedJob, task_uuid: str) -> AsyncIterator[None]:
        yield

    async def submit(self, job: PlannedJob, *, upload_endpoint: str | None) -> SubmittedJob:
        return await submit_job(
            self.client,
            self.journal,
            job,
            settings=self.settings,
            nonce=self.nonce,
            upload_endpoint=upload_endpoint,
        )

    async def wait(self, job: SubmittedJob) -> LipsyncJobResult:
        return await wait_for_job(
            self.client,
            self.journal,
            job,
            timeout_s=self.settings.job_timeout_s,
            max_task_retries=self.settings.max_task_retries,
        )

    async def download(
        self, result: Sync3Result, dest: Path, *, language: str, expected_duration_s: float
    ) -> Path:
        return Path(
            await download_output(result, dest, expected_duration_s=expected_duration_s, client=self.client)
        )

    async def check(
        self, output: Path, *, job: PlannedJob, result: Sync3Result, source: str
    ) -> QualityReport:
        expected = not (self.offline or result.emulated)
        return await asyncio.to_thread(
            lambda: check_job_output(
                output,
                source=source,
                job=job,
                thresholds=self.settings.quality,
                result=result,
                lipsync_expected=expected,
            )
        )


@dataclass
class _Staged:
    """A downloaded result under its staging name; `stored` is the object the service PUT it to, if any."""

    path: Path
    stored: str | None = None


@dataclass
class _Checked:
    result: Sync3Result
    staged: _Staged
    report: QualityReport
    pictures: list[Path]


class JobRunner:
    """Runs planned jobs against one Runware client; one runner serves every job of a run."""

    def __init__(
        self,
        client: RunwareClient,
        settings: RunSettings,
        *,
        out_dir: Path | str | Destination,
        journal: JobJournal,
        offline: bool = False,
        policy: DeliveryPolicy = "fail",
        nonce: str | None = None,
        hook: StepHook | None = None,
        steps: JobSteps | None = None,
    ) -> None:
        self.client, self.settings = client, settings
        # Outputs settle in a local folder; for an s3:// out_dir that folder is a working copy published key by key.
        self.destination = out_dir if isinstance(out_dir, Destination) else Destination.of(out_dir)
        self.out_dir = self.destination.local
        # The service PUTs results straight into the bucket (uploadEndpoint) only for an s3:// out_dir.
        self.deliver_to_storage = settings.deliver_to_storage and self.destination.remote is not None
        if settings.deliver_to_storage and not self.deliver_to_storage:
            log.info("deliver_to_storage applies to an s3:// out_dir only: results are downloaded")
        self.journal, self.offline, self.policy, self.nonce = journal, offline, policy, nonce
        self.hook: StepHook = hook or run_plain
        self.steps: JobSteps = steps or CoreSteps(client, journal, settings, nonce=nonce, offline=offline)

    async def source_analysis(self, plan: RunPlan) -> SourceAnalysis | None:
        """The process's one decode of the plan's source, keeping the frames of all its jobs (None if it
        cannot be decoded: pre-flight says why). Shared with pre-flight and every language's checks."""
        payloads = [job.request.to_wire() for job in plan.jobs]
        return await asyncio.to_thread(source_analysis_for, plan.video_ref, payloads, self.settings.quality)

    async def run(self, job: PlannedJob, plan: RunPlan) -> LanguageOutput:
        """One job to its outcome; a service error ends up in `outcome.error`, not raised."""
        request = job.request
        outcome = LanguageOutput(
            language=job.language,
            output_name=job.output_name,
            segments=len(request.settings.segments or []) if request.settings else 0,
            warnings=list(job.warnings),
        )
        base_uuid = await asyncio.to_thread(job_task_uuid, job, self.nonce)
        outcome.task_uuid = base_uuid
        record = await asyncio.to_thread(self.journal.load, base_uuid)
        if (
            record.outcome is not None
            and record.delivered_to == self._delivery_key
            and _still_delivered(record.outcome)
        ):
            log.info("%s: already delivered by an earlier run (task %s)", job.language, base_uuid)
            return record.outcome

        def step(name: StepName, **detail: Any) -> Step:
            return Step(
                name=name, language=job.language, task_uuid=outcome.task_uuid or base_uuid, detail=detail
            )

        await self.source_analysis(plan)  # one decode for every language, before any of them asks
        upload_endpoint = await self._upload_endpoint(job)
        async with self.steps.in_flight(job, base_uuid):
            try:
                submitted = await self.hook(
                    step("submit", accepted=list(record.accepted), files=len(request.local_refs())),
                    lambda: self.steps.submit(job, upload_endpoint=upload_endpoint),
                )
            except PreflightFailed as exc:
                outcome.verdict = "fail"
                outcome.failed_checks = failed_checks(exc.report)
                outcome.error = "pre-flight failed, nothing was uploaded or submitted: " + "; ".join(
                    c.message for c in exc.report.checks if c.status == "fail"
                )
                return outcome
            except RunwareError as exc:
                outcome.error = str(exc)
                return outcome
            waited = await self.hook(step("wait"), lambda: self.steps.wait(submitted))
        outcome.task_uuid = waited.task_uuid
        if waited.error is not None:
            outcome.error = str(waited.error)
            return outcome
        results = waited.results
        if self.offline or any(r.emulated for r in results):
            outcome.estimated_cost_usd = (
                waited.cost_usd
            )  # the emulator's price: what the real service might charge
        else:
            outcome.cost_usd = waited.cost_usd
        try:
            staged = await self.hook(
                step("download", results=len(results)), lambda: self._download(job, plan, results)
            )
        except RunwareError as exc:
            outcome.error = str(exc)
            return outcome
        checked = await self.hook(
            step("check", results=len(results)), lambda: self._check_all(job, plan, results, staged)
        )
        await self.hook(step("deliver"), lambda: asyncio.to_thread(self._deliver, job, checked, outcome))
        record = await asyncio.to_thread(self.journal.load, base_uuid)  # the wait may have added resubmits
        record.outcome, record.delivered_to = outcome, self._delivery_key
        await asyncio.to_thread(self.journal.save, record)
        return outcome

    @property
    def _delivery_key(self) -> str:
        """A recorded outcome is reused only by a run that delivers to the same place by the same policy."""
        return f"{self.destination.where}|{self.policy}"

    # ------------------------------------------------------------------ steps

    async def _upload_endpoint(self, job: PlannedJob) -> str | None:
        """With deliver_to_storage, a presigned PUT for the result (not part of the taskUUID)."""
        if not self.deliver_to_storage:
            return None
        from prefect_lipsync.storage.listing import presign_put

        staged = self.destination.staging_ref(job.output_name)
        expires = int(self.settings.ttl_s + self.settings.job_timeout_s)
        return await asyncio.to_thread(lambda: presign_put(staged, expires_s=expires))

    async def _download(self, job: PlannedJob, plan: RunPlan, results: list[Sync3Result]) -> list[_Staged]:
        staged = []
        for index, result in enumerate(results):
            dest = staging_path(self.out_dir, _variation_name(job.output_name, index))
            stored = self.destination.staging_ref(job.output_name) if self.deliver_to_storage else None
            fetched = False
            if stored is not None and not (dest.exists() and _read(_marker(dest)) == result.video_uuid):
                fetched = await asyncio.to_thread(self.destination.fetch_stored_result, stored, dest)
                if fetched:
                    log.info("%s: result read from %s, where the service stored it", job.language, stored)
                    await asyncio.to_thread(write_text_atomic, _marker(dest), result.video_uuid or "")
                else:
                    log.warning(
                        "%s: the service did not store the result in time; downloading it", job.language
                    )
                    stored = None
            if not fetched:
                # Without a Content-Length, a download is complete only if it decodes to the source's length.
                await self.steps.download(
                    result, dest, language=job.language, expected_duration_s=plan.video_duration
                )
            staged.append(_Staged(dest, stored))
        return staged

    async def _check_all(
        self, job: PlannedJob, plan: RunPlan, results: list[Sync3Result], staged: list[_Staged]
    ) -> list[_Checked]:
        checked = []
        for result, one in zip(results, staged, strict=True):
            report = await self.steps.check(one.path, job=job, result=result, source=plan.video_ref)
            pictures = await asyncio.to_thread(
                write_pictures,
                report,
                output=one.path,
                source=local_source(plan),
                request_payload=job.request.to_wire(),
            )
            checked.append(_Checked(result, one, report, list(pictures.values())))
        return checked

    def _deliver(self, job: PlannedJob, checked: list[_Checked], outcome: LanguageOutput) -> None:
        for c in checked:  # the delivered audio: the checked dub over the plan's music-and-effects stem
            c.staged.stored = mix_for_delivery(job, c.staged.path, c.staged.stored, c.report.notes)
        # With numberResults > 1, the best variation (verdict, then lip-sync score) is delivered under
        # the job's name; the others are kept as alternates, and the report says why.
        choice = choose_best([c.report for c in checked])
        order = [choice.index, *choice.alternates]
        if len(checked) > 1:
            choice.report.notes.append(choice.reason)
        settled: list[tuple[Settled, str | None]] = []
        for rank, index in enumerate(order):
            c = checked[index]
            name = _variation_name(job.output_name, rank)
            settled.append(
                (
                    settle(
                        c.staged.path,
                        c.report,
                        c.pictures,
                        out_dir=self.out_dir,
                        name=name,
                        policy=self.policy,
                        ref=self.destination.ref,
                    ),
                    c.staged.stored,
                )
            )
            _marker(c.staged.path).unlink(missing_ok=True)
        for one, stored in settled:
            self._publish(one, stored)
        best, ref = settled[0][0], self.destination.ref
        outcome.verdict = choice.report.verdict
        outcome.report = ref(best.report)
        outcome.pictures = [ref(p) for p in best.pictures]
        outcome.failed_checks = failed_checks(choice.report)
        outcome.output = None if best.quarantined else ref(best.video)
        outcome.quarantined_to = ref(best.video) if best.quarantined else None
        outcome.held = best.held
        outcome.extra_outputs = [ref(s.video) for s, _ in settled[1:] if not s.quarantined]
        outcome.chosen_because = choice.reason if len(checked) > 1 else None

    def _publish(self, settled: Settled, stored: str | None) -> None:
        """To object storage: pictures and reports first, the video last, so its key means done.

        A video the service stored in the bucket itself is copied there to its final key, not sent
        again. A held video keeps its local copy: a reviewer's approval moves it to its delivery name.
        """
        note = quarantine_note_of(settled.video)
        self.destination.publish([*settled.pictures, settled.report, *([note] if note.exists() else [])])
        if stored is not None and not settled.held:
            self.destination.promote_stored(stored, settled.video)
        else:
            self.destination.publish([settled.video], keep_local=settled.held)
            if stored is not None:
                remove_objects([stored])


def local_source(plan: RunPlan) -> Path:
    """The source video as a local file: object storage goes through the bounded media cache."""
    return local_copy_of(plan.video_ref)


def _marker(dest: Path) -> Path:
    """Beside a downloaded result: its videoUUID, so a resumed run does not fetch it again."""
    return dest.with_name(f".{dest.name}.video-uuid")


def _variation_name(name: str, index: int) -> str:
    if index == 0:
        return name
    path = Path(name)
    return f"{path.stem}.{index + 1}{path.suffix}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _still_delivered(outcome: LanguageOutput) -> bool:
    """A recorded outcome counts only while what it points at is still there."""
    kept = outcome.output or outcome.quarantined_to
    return kept is not None and ref_exists(kept)


async def run_jobs(
    runner: JobRunner,
    plan: RunPlan,
    *,
    run_one: Callable[[PlannedJob], Awaitable[LanguageOutput]] | None = None,
    on_done: Callable[[LanguageOutput], Awaitable[None]] | None = None,
) -> list[LanguageOutput]:
    """Every job of the plan, `settings.concurrency` at a time; one job's failure never stops another."""
    limit = asyncio.Semaphore(runner.settings.concurrency)
    go = run_one or (lambda job: runner.run(job, plan))

    async def one(job: PlannedJob) -> LanguageOutput:
        async with limit:
            try:
                output = await go(job)
            except Exception as exc:  # a bug or a local failure: the other paid jobs go on
                log.exception("%s: the job failed", job.language)
                output = LanguageOutput(language=job.language, error=f"{exc.__class__.__name__}: {exc}")
        if on_done is not None:
            await on_done(output)
        return output

    return list(await asyncio.gather(*(one(job) for job in plan.jobs)))
