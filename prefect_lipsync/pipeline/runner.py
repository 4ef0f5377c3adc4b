"""The job runner: one planned job from pre-flight to a delivered, checked output.

Steps, each a plain function with its I/O at the edge, each passed through a `StepHook` so that a
caller (the Prefect layer) can make it a task run, log it, emit an event or hold a concurrency slot:

    render-audio -> preflight -> upload -> submit-and-wait -> download -> check -> deliver

Resume is the runner's own business, not the orchestrator's: the taskUUID comes from the job's
content, uploads are remembered by content hash, and the journal writes down each taskUUID the
moment the service accepts it (paid) and the outcome once delivered. A re-run after a crash uploads
nothing again, submits nothing again, and delivers what was paid for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.media.audio_ops import render_audio_op
from prefect_lipsync.media.errors import MediaError
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
from prefect_lipsync.pipeline.journal import JobJournal, JobRecord
from prefect_lipsync.pipeline.outcome import LanguageOutput
from prefect_lipsync.pipeline.plan import RunPlan
from prefect_lipsync.pipeline.settings import RunSettings
from prefect_lipsync.quality import QualityReport, preflight, write_pictures
from prefect_lipsync.quality.bestof import choose_best
from prefect_lipsync.quality.planned import check_planned_output
from prefect_lipsync.quality.source_analysis import SourceAnalysis, analyze_source
from prefect_lipsync.runware.client import RunwareClient, content_task_uuid, with_media_refs
from prefect_lipsync.runware.errors import RunwareError
from prefect_lipsync.runware.models import Sync3Request, Sync3Result
from prefect_lipsync.storage.refs import is_s3

log = logging.getLogger("prefect_lipsync.pipeline")

T = TypeVar("T")
StepName = Literal["render-audio", "preflight", "upload", "submit-and-wait", "download", "check", "deliver"]


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
        # One analysis of each source per run, shared by all its languages (pre-flight and checks).
        self._analyses: dict[str, asyncio.Task[SourceAnalysis | None]] = {}

    async def source_analysis(self, plan: RunPlan) -> SourceAnalysis | None:
        """The run's one decode of the plan's source (None if it cannot be decoded: pre-flight says why)."""
        task = self._analyses.get(plan.video_ref)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(self._analyze, plan))
            self._analyses[plan.video_ref] = task
        return await asyncio.shield(task)

    def _analyze(self, plan: RunPlan) -> SourceAnalysis | None:
        try:
            return analyze_source(
                local_source(plan),
                request_payloads=[job.request.to_wire() for job in plan.jobs],
                thresholds=self.settings.quality,
            )
        except MediaError:
            return None

    async def run(self, job: PlannedJob, plan: RunPlan) -> LanguageOutput:
        """One job to its outcome; a service error ends up in `outcome.error`, not raised."""
        request = job.request
        outcome = LanguageOutput(
            language=job.language,
            output_name=job.output_name,
            segments=len(request.settings.segments or []) if request.settings else 0,
            warnings=list(job.warnings),
        )
        rendered = {op.output_uri: op.content_key for op in job.audio_ops}  # not written yet
        base_uuid = await asyncio.to_thread(lambda: content_task_uuid(request, self.nonce, known=rendered))
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

        if job.audio_ops:  # pre-flight listens to the audio exactly as it will be uploaded
            await self.hook(step("render-audio", count=len(job.audio_ops)), lambda: _render(job))
        analysis = await self.source_analysis(plan)
        pre = await self.hook(
            step("preflight"), lambda: asyncio.to_thread(self._preflight, job, plan, analysis)
        )
        if pre.verdict == "fail":
            outcome.verdict = "fail"
            outcome.failed_checks = failed_checks(pre)
            outcome.error = "pre-flight failed, nothing was uploaded or submitted: " + "; ".join(
                c.message for c in pre.checks if c.status == "fail"
            )
            return outcome
        try:
            prepared = await self.hook(
                step("upload", files=len(request.local_refs())),
                lambda: self._upload(request.model_copy(update={"task_uuid": base_uuid}), job),
            )
            results = await self.hook(
                step("submit-and-wait", accepted=list(record.accepted)),
                lambda: self._submit_and_wait(prepared, record, outcome),
            )
            costs = [r.cost for r in results if r.cost is not None]
            paid = round(sum(costs), 4) if costs else None
            if self.offline or any(r.emulated for r in results):
                outcome.estimated_cost_usd = paid  # the emulator's price: what the real service might charge
            else:
                outcome.cost_usd = paid
            staged = await self.hook(
                step("download", results=len(results)), lambda: self._download(job, plan, results)
            )
        except RunwareError as exc:
            outcome.error = str(exc)
            return outcome
        checked = await self.hook(
            step("check", results=len(results)),
            lambda: asyncio.to_thread(self._check_all, job, plan, results, staged, analysis),
        )
        await self.hook(step("deliver"), lambda: asyncio.to_thread(self._deliver, job, checked, outcome))
        record.outcome, record.delivered_to = outcome, self._delivery_key
        await asyncio.to_thread(self.journal.save, record)
        return outcome

    @property
    def _delivery_key(self) -> str:
        """A recorded outcome is reused only by a run that delivers to the same place by the same policy."""
        return f"{self.destination.where}|{self.policy}"

    # ------------------------------------------------------------------ steps

    async def _upload(self, request: Sync3Request, job: PlannedJob) -> Sync3Request:
        """Local files uploaded, s3:// objects presigned for the service to fetch; the taskUUID stays.

        With deliver_to_storage, also a presigned PUT for the result (not part of the taskUUID).
        """
        from prefect_lipsync.storage.listing import presign_put, presign_refs

        uploaded = await self.client.upload_local_refs(request)
        objects = uploaded.object_refs()
        # Presigned for the URL lifetime plus the job's own deadline: the service uses them later.
        expires = int(self.settings.ttl_s + self.settings.job_timeout_s)
        if objects:
            urls = await asyncio.to_thread(lambda: presign_refs(objects, expires_s=expires))
            uploaded = with_media_refs(uploaded, urls)
        if self.deliver_to_storage:
            staged = self.destination.staging_ref(job.output_name)
            put_url = await asyncio.to_thread(lambda: presign_put(staged, expires_s=expires))
            uploaded = uploaded.model_copy(update={"upload_endpoint": put_url})
        return uploaded

    def _preflight(self, job: PlannedJob, plan: RunPlan, analysis: SourceAnalysis | None) -> QualityReport:
        # The run's budget was checked once, on the planner's estimate, before any job started.
        return preflight(
            job.request.to_wire(),
            source=local_source(plan),
            local_media=local_media(job),
            expected_fps=plan.video_fps,
            expected_duration=plan.video_duration,
            thresholds=self.settings.quality,
            source_analysis=analysis,
        )

    async def _submit_and_wait(
        self, prepared: Sync3Request, record: JobRecord, outcome: LanguageOutput
    ) -> list[Sync3Result]:
        def accepted(task_uuid: str) -> None:
            outcome.task_uuid = task_uuid
            self.journal.accepted(record, task_uuid)

        # A taskUUID the journal holds is never submitted again: should the service have forgotten it
        # (purged, or the endpoint reset), TaskNotKnown says so and how to pay again deliberately.
        return await self.client.run_task(
            prepared,
            timeout=self.settings.job_timeout_s,
            max_task_retries=self.settings.max_task_retries,
            accepted=record.accepted,
            on_accepted=accepted,
        )

    async def _download(self, job: PlannedJob, plan: RunPlan, results: list[Sync3Result]) -> list[_Staged]:
        staged = []
        for index, result in enumerate(results):
            dest = staging_path(self.out_dir, _variation_name(job.output_name, index))
            stored = self.destination.staging_ref(job.output_name) if self.deliver_to_storage else None
            marker = dest.with_name(f".{dest.name}.video-uuid")
            if not (result.video_uuid and dest.exists() and _read(marker) == result.video_uuid):
                fetched = False
                if stored is not None:
                    fetched = await asyncio.to_thread(self.destination.fetch_stored_result, stored, dest)
                if fetched:
                    log.info("%s: result read from %s, where the service stored it", job.language, stored)
                else:
                    if stored:
                        log.warning(
                            "%s: the service did not store the result in time; downloading it", job.language
                        )
                        stored = None
                    # Without a Content-Length, a download is complete only if it decodes to the source's length.
                    await self.client.download(result, dest, expected_duration_s=plan.video_duration)
                await asyncio.to_thread(write_text_atomic, marker, result.video_uuid or "")
            staged.append(_Staged(dest, stored))
        return staged

    def _check_all(
        self,
        job: PlannedJob,
        plan: RunPlan,
        results: list[Sync3Result],
        staged: list[_Staged],
        analysis: SourceAnalysis | None,
    ) -> list[_Checked]:
        return [
            self._check(job, plan, result, path, analysis)
            for result, path in zip(results, staged, strict=True)
        ]

    def _check(
        self,
        job: PlannedJob,
        plan: RunPlan,
        result: Sync3Result,
        staged: _Staged,
        analysis: SourceAnalysis | None,
    ) -> _Checked:
        source = local_source(plan)
        # The same checks `prefect-lipsync check --plan` runs, the face box chosen the same way.
        report = check_planned_output(
            staged.path,
            source,
            job,
            self.settings.quality,
            nsfw_flag=result.nsfw_content,
            lipsync_expected=not (self.offline or result.emulated),
            source_analysis=analysis,
            local_media=local_media(job),
            quarantine_flagged=False,  # delivery decides where every output goes
        )
        pictures = write_pictures(
            report, output=staged.path, source=source, request_payload=job.request.to_wire()
        )
        return _Checked(result, staged, report, list(pictures.values()))

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
            c.staged.path.with_name(f".{c.staged.path.name}.video-uuid").unlink(missing_ok=True)
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
    if is_s3(plan.video_ref):
        from prefect_lipsync.storage.cache import materialize

        return materialize(plan.video_ref)
    return Path(plan.video_ref)


def local_media(job: PlannedJob) -> dict[str, Path]:
    """Local copies of the job's s3:// media (cached), for the checks that listen to the submitted audio."""
    objects = job.request.object_refs()
    if not objects:
        return {}
    from prefect_lipsync.storage.cache import local_copies

    return local_copies(objects)


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


async def _render(job: PlannedJob) -> list[Path]:
    return [
        await asyncio.to_thread(render_audio_op, planned.op, Path(planned.output_path).parent)
        for planned in job.audio_ops
    ]


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
