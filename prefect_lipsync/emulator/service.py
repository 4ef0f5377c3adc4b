"""What the emulated service does with each task of a POST (auth and HTTP faults are in `app`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from prefect_lipsync.emulator.body import MediaDecodeError, SpilledString
from prefect_lipsync.emulator.config import EmulatorConfig
from prefect_lipsync.emulator.errors import code_for_problem, error_item
from prefect_lipsync.emulator.faults import FailureShape, Faults
from prefect_lipsync.emulator.fetches import UrlFetcher
from prefect_lipsync.emulator.jobs import TASK_TYPE, Clock, Failure, Job, Result, Stats
from prefect_lipsync.emulator.render import SourceInfo, probe_source, render, variation_audio_offset
from prefect_lipsync.emulator.store import MediaRefError, MediaStore
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.runware.models import Sync3Request, Sync3ValidationError, is_local_ref

log = logging.getLogger("prefect_lipsync.emulator")

TRANSIENT_CODE = "timeoutProvider"
TRANSIENT_MESSAGE = "The provider did not answer in time. The task was not billed; submit it again."


@dataclass
class Answer:
    """The outcome of one POST's tasks: the envelope parts, and whether a submit was accepted."""

    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    """taskUUIDs of the videoInference tasks accepted (their ACK item may be left out, as a quirk)."""


class Emulator:
    """The service's state: media, jobs, outputs, credits, counters. Lives on one event loop."""

    def __init__(self, config: EmulatorConfig, storage: Path) -> None:
        self.config = config
        self.storage = storage
        self.tmp_dir = storage / "tmp"
        self.outputs_dir = storage / "outputs"
        for folder in (self.tmp_dir, self.outputs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.clock = Clock()
        self.media = MediaStore(storage / "media")
        self.fetcher = UrlFetcher(
            storage / "fetched",
            timeout=config.fetch_timeout,
            max_parallel=config.max_parallel_fetches,
            remember_s=config.fetch_memory_s,
            now=self.clock.now,
        )
        self.faults = Faults(config)
        self.stats = Stats()
        self.jobs: dict[str, Job] = {}
        self.results: dict[str, tuple[Job, Result]] = {}
        self._claimed: set[str] = set()
        self.spent_usd = 0.0
        self._probe_cache: dict[Path, SourceInfo] = {}
        self._render_slots = asyncio.Semaphore(max(1, config.max_parallel_renders))
        self._probe_slots = asyncio.Semaphore(2)
        self.sessions: set[str] = set()
        """connectionSessionUUIDs handed out to WebSocket clients (a reconnect may present one)."""
        self._background: set[asyncio.Task[None]] = set()
        self.http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.http = httpx.AsyncClient(
            timeout=self.config.fetch_timeout,
            follow_redirects=True,
            limits=httpx.Limits(max_connections=max(10, self.config.max_parallel_fetches + 4)),
        )
        self.fetcher.attach(self.http)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        await self.fetcher.aclose()
        if self.http is not None:
            await self.http.aclose()

    def reset(self) -> None:
        """Forget everything (jobs, media, counters, fault streams); keep the config."""
        for task in list(self._background):
            task.cancel()
        self.jobs.clear()
        self.results.clear()
        self._claimed.clear()
        self.media.clear()
        self.fetcher.clear()
        self.sessions.clear()
        shutil.rmtree(self.outputs_dir, ignore_errors=True)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        self.faults.reset()
        self.spent_usd = 0.0

    # ------------------------------------------------------------------ stats

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.now()
        done = [job for job in self.jobs.values() if job.is_done(now)]
        counts = self.stats.counts
        snap: dict[str, Any] = {
            "requests": dict(self.stats.requests),
            "http_requests": counts["http_requests"],
            "accepted": counts["accepted"],
            "rejected": counts["rejected"],
            "conflicts": counts["conflicts"],
            "distinct_task_uuids": len(self.stats.task_uuids),
            "in_progress": len(self.jobs) - len(done),
            "finished": sum(1 for job in done if job.failure is None),
            "failed": sum(1 for job in done if job.failure is not None),
            "results": sum(len(job.results) for job in done if job.failure is None),
            "uploads": counts["uploads"],
            "upload_bytes": counts["upload_bytes"],
            "media_deleted": counts["media_deleted"],
            "media_fetches": self.fetcher.fetch_count,
            "media_fetch_failures": self.fetcher.failure_count,
            "preparing": sum(1 for job in self.jobs.values() if job.preparing),
            "renders": counts["renders"],
            "downloads": counts["downloads"],
            "download_bytes": counts["download_bytes"],
            "expired_downloads": counts["expired_downloads"],
            "ws_connections": counts["ws_connections"],
            "ws_messages": counts["ws_messages"],
            "webhooks_sent": counts["webhooks_sent"],
            "webhook_failures": counts["webhook_failures"],
            "upload_endpoint_puts": counts["upload_endpoint_puts"],
            "spent_usd": round(self.spent_usd, 6),
            "credits_left_usd": (
                None
                if self.config.credits_usd is None
                else round(self.config.credits_usd - self.spent_usd, 6)
            ),
            "faults": {
                name.removeprefix("fault_"): n
                for name, n in sorted(counts.items())
                if name.startswith("fault_")
            },
        }
        return snap

    # ------------------------------------------------------------------ tasks

    async def handle_tasks(self, tasks: list[Any], outputs_url: str, media_url: str) -> Answer:
        answer = Answer()
        for task in tasks:
            if not isinstance(task, dict):
                answer.errors.append(error_item("invalidTask", "every task must be a JSON object"))
                continue
            task_type = task.get("taskType")
            self.stats.requests[str(task_type)] += 1
            task_uuid = task.get("taskUUID")
            task_uuid = task_uuid if isinstance(task_uuid, str) else None
            if task_type == TASK_TYPE:
                await self._video_inference(task, task_uuid, outputs_url, media_url, answer)
            elif task_type == "getResponse":
                self._get_response(task_uuid, outputs_url, answer)
            elif task_type == "mediaStorage":
                await self._media_storage(task, task_uuid, media_url, answer)
            elif task_type == "authentication":
                answer.data.append(
                    {"taskType": "authentication", "connectionSessionUUID": self.session_for(task)}
                )
            else:
                answer.errors.append(
                    error_item(
                        "unsupportedTaskType",
                        f"taskType {task_type!r} is not supported by this emulator"
                        " (it speaks videoInference with sync:3@0, getResponse and mediaStorage)",
                        parameter="taskType",
                        task_type=str(task_type) if task_type is not None else None,
                        task_uuid=task_uuid,
                    )
                )
        return answer

    def session_for(self, auth_task: dict[str, Any]) -> str:
        """The connectionSessionUUID for an authentication task: the one it presents, when known."""
        presented = auth_task.get("connectionSessionUUID")
        if isinstance(presented, str) and presented in self.sessions:
            return presented
        session = str(uuid.uuid4())
        self.sessions.add(session)
        return session

    # -- videoInference

    async def _video_inference(
        self, task: dict[str, Any], task_uuid: str | None, outputs_url: str, media_url: str, answer: Answer
    ) -> None:
        def reject(code: str, message: str, parameter: str | list[str] | None) -> None:
            self.stats.bump("rejected")
            answer.errors.append(
                error_item(code, message, parameter=parameter, task_type=TASK_TYPE, task_uuid=task_uuid)
            )

        if task_uuid is None:
            reject(
                "missingParameter", "taskUUID is required (a version-4 UUID made by the client)", "taskUUID"
            )
            return
        self.stats.task_uuids.add(task_uuid)
        if task_uuid in self.jobs or task_uuid in self._claimed:
            self.stats.bump("conflicts")
            answer.errors.append(
                error_item(
                    "conflictTaskUUID",
                    f"a task with taskUUID {task_uuid} already exists; poll it with getResponse",
                    parameter="taskUUID",
                    task_type=TASK_TYPE,
                    task_uuid=task_uuid,
                )
            )
            return
        try:
            request = Sync3Request.model_validate(task)
        except Sync3ValidationError as exc:
            self.stats.bump("rejected")
            for problem in exc.problems:
                answer.errors.append(
                    error_item(
                        code_for_problem(problem.message),
                        f"{problem.path or 'request'}: {problem.message}"
                        if problem.path
                        else problem.message,
                        parameter=problem.path or _rule_parameters(problem.message),
                        task_type=TASK_TYPE,
                        task_uuid=task_uuid,
                    )
                )
            return
        files = [(path, ref) for path, ref in _ref_paths(request) if is_local_ref(ref)]
        if files:
            self.stats.bump("rejected")
            for path, ref in files:
                answer.errors.append(
                    error_item(
                        "invalidParameter",
                        f"{path}: {ref[:80]!r} is a local file; upload it with mediaStorage and pass its"
                        " mediaUUID or mediaURL",
                        parameter=path,
                        task_type=TASK_TYPE,
                        task_uuid=task_uuid,
                    )
                )
            return
        local: dict[str, Path] = {}
        remote: list[tuple[str, str]] = []
        broken: list[tuple[str, str]] = []
        for path, ref in _ref_paths(request):
            try:
                found = self.media.lookup(ref, media_url)
            except MediaRefError as exc:
                broken.append((path, str(exc)))
                continue
            if found is None:
                remote.append((path, ref))
            else:
                local[path] = found
        if broken:
            self.stats.bump("rejected")
            for path, message in broken:
                answer.errors.append(
                    error_item(
                        "invalidMediaReference",
                        f"{path}: {message}",
                        parameter=path,
                        task_type=TASK_TYPE,
                        task_uuid=task_uuid,
                    )
                )
            return
        # Claim the UUID before the awaits below, so a concurrent duplicate conflicts.
        self._claimed.add(task_uuid)
        try:
            if remote:
                self._accept_fetching(request, task_uuid, outputs_url, local, remote, answer, reject)
            else:
                await self._accept_local(request, task_uuid, outputs_url, local, answer, reject)
        finally:
            self._claimed.discard(task_uuid)

    async def _accept_local(
        self,
        request: Sync3Request,
        task_uuid: str,
        outputs_url: str,
        resolved: dict[str, Path],
        answer: Answer,
        reject: Callable[[str, str, str | list[str] | None], None],
    ) -> None:
        """Every input is already here: probe it now, so a bad video or a cost past the credits
        is refused in the answer to the submit."""
        try:
            source = await self._probe(resolved["inputs.video"])
        except MediaError as exc:
            reject("invalidParameter", f"inputs.video is not a readable video: {exc.message}", "inputs.video")
            return
        cost = round(self.config.price_per_second * source.duration, 6)
        transient = self.faults.task_error()
        total = 0.0 if transient else cost * request.number_results
        credits = self.config.credits_usd
        if credits is not None and self.spent_usd + total > credits + 1e-9:
            reject(
                "insufficientCredits",
                f"this task costs about ${total:.2f} and the account has ${credits - self.spent_usd:.2f} left;"
                " add credits",
                None,
            )
            return
        job = self._new_job(request, task_uuid, outputs_url, transient, preparing=False)
        job.set_inputs(resolved, source, cost)
        self.spent_usd += total
        self._register(job, answer)

    def _accept_fetching(
        self,
        request: Sync3Request,
        task_uuid: str,
        outputs_url: str,
        local: dict[str, Path],
        remote: list[tuple[str, str]],
        answer: Answer,
        reject: Callable[[str, str, str | list[str] | None], None],
    ) -> None:
        """Some inputs are URLs: acknowledge at once and fetch them in the background; what goes
        wrong there (an unreachable URL, a file that is no video) fails the task in getResponse."""
        credits = self.config.credits_usd
        if credits is not None and self.spent_usd >= credits - 1e-9:
            reject(
                "insufficientCredits",
                f"the account has ${credits - self.spent_usd:.2f} left; add credits",
                None,
            )
            return
        job = self._new_job(request, task_uuid, outputs_url, self.faults.task_error(), preparing=True)
        self._register(job, answer)
        self._spawn(self._prepare(job, local, remote))

    def _new_job(
        self,
        request: Sync3Request,
        task_uuid: str,
        outputs_url: str,
        transient: FailureShape | None,
        *,
        preparing: bool,
    ) -> Job:
        now = self.clock.now()
        results = [
            Result(
                video_uuid=str(uuid.uuid4()),
                seed=self.faults.result_seed(),
                nsfw=self._nsfw(request, task_uuid),
                first_get_fault=self.faults.download_error(),
            )
            for _ in range(request.number_results)
        ]
        job = Job(
            task_uuid=task_uuid,
            request=request,
            accepted_at=now,
            finish_at=now + self.config.latency,
            results=results,
            failure=Failure(TRANSIENT_CODE, TRANSIENT_MESSAGE, transient) if transient else None,
            ttl=request.ttl or self.config.ttl,
            outputs_url=outputs_url,
            statusless=self.faults.statusless_success(),
            preparing=preparing,
        )
        if transient:
            self.stats.bump("fault_task_errors")
        return job

    def _register(self, job: Job, answer: Answer) -> None:
        self.jobs[job.task_uuid] = job
        for result in job.results:
            self.results[result.video_uuid] = (job, result)
        self.stats.bump("accepted")
        answer.accepted.append(job.task_uuid)
        if not self.faults.empty_ack():
            answer.data.append({"taskType": TASK_TYPE, "taskUUID": job.task_uuid})
        if job.request.webhook_url or job.request.upload_endpoint:
            self._spawn(self._deliver(job))

    async def _prepare(self, job: Job, local: dict[str, Path], remote: list[tuple[str, str]]) -> None:
        """Fetch a job's URL inputs (concurrently, through the shared fetcher), probe, charge."""
        try:
            outcomes = await asyncio.gather(
                *(self.fetcher.fetch(ref) for _, ref in remote), return_exceptions=True
            )
            resolved = dict(local)
            problems: list[tuple[str, str]] = []
            for (path, _), outcome in zip(remote, outcomes, strict=True):
                if isinstance(outcome, Path):
                    resolved[path] = outcome
                elif isinstance(outcome, MediaRefError):
                    problems.append((path, str(outcome)))
                elif isinstance(outcome, BaseException):
                    raise outcome
            if problems:
                message = "; ".join(f"{path}: {text}" for path, text in problems)
                job.fail(self.clock.now(), "invalidMediaReference", message, problems[0][0])
                return
            try:
                source = await self._probe(resolved["inputs.video"])
            except MediaError as exc:
                job.fail(
                    self.clock.now(),
                    "invalidParameter",
                    f"inputs.video is not a readable video: {exc.message}",
                    "inputs.video",
                )
                return
            cost = round(self.config.price_per_second * source.duration, 6)
            total = 0.0 if job.failure else cost * job.request.number_results
            credits = self.config.credits_usd
            if credits is not None and self.spent_usd + total > credits + 1e-9:
                job.fail(
                    self.clock.now(),
                    "insufficientCredits",
                    f"this task costs about ${total:.2f} and the account has"
                    f" ${credits - self.spent_usd:.2f} left; add credits",
                    None,
                )
                return
            job.set_inputs(resolved, source, cost)
            self.spent_usd += total
            job.finish_at = max(job.finish_at, self.clock.now())
        finally:
            job.preparing = False
            job.settled.set()

    def _nsfw(self, request: Sync3Request, task_uuid: str) -> bool:
        hit = self.faults.nsfw()  # drawn every time, to keep the stream reproducible
        needle = self.config.nsfw_when_text_contains
        if needle and request.speech is not None and needle.lower() in request.speech.text.lower():
            return True
        return hit or task_uuid in self.config.nsfw_task_uuids

    async def _probe(self, video: Path) -> SourceInfo:
        cached = self._probe_cache.get(video)
        if cached is None:
            async with self._probe_slots:
                # Another task may have probed the same file while this one waited for a slot.
                cached = self._probe_cache.get(video)
                if cached is None:
                    cached = await anyio.to_thread.run_sync(probe_source, video)
            self._probe_cache[video] = cached
        return cached

    # -- getResponse

    def _get_response(self, task_uuid: str | None, outputs_url: str, answer: Answer) -> None:
        self.stats.bump("polls")
        job = self.jobs.get(task_uuid or "")
        if job is None:
            answer.errors.append(
                error_item(
                    "taskNotFound",
                    f"no task with taskUUID {task_uuid} (never submitted, or forgotten)",
                    parameter="taskUUID",
                    task_type="getResponse",
                    task_uuid=task_uuid,
                )
            )
            return
        now = self.clock.now()
        if not job.is_done(now):
            answer.data.append(job.processing_item(now))
        elif job.failure is not None:
            if job.failure.shape == "errors":
                answer.errors.append(job.failure_error())
            else:
                answer.data.append(job.failure_data_item())
        else:
            answer.data.extend(job.result_item(result, outputs_url) for result in job.results)

    # -- mediaStorage

    async def _media_storage(
        self, task: dict[str, Any], task_uuid: str | None, media_url: str, answer: Answer
    ) -> None:
        def fail(code: str, message: str, parameter: str | None) -> None:
            answer.errors.append(
                error_item(code, message, parameter=parameter, task_type="mediaStorage", task_uuid=task_uuid)
            )

        operation = task.get("operation", "upload")
        media = task.get("media")
        if operation == "delete":
            if not isinstance(media, str) or not self.media.delete(media):
                fail("mediaNotFound", f"no media with mediaUUID {str(media)[:80]!r}", "media")
                return
            self.stats.bump("media_deleted")
            answer.data.append(
                {"taskType": "mediaStorage", "taskUUID": task_uuid, "mediaUUID": media, "status": "deleted"}
            )
            return
        if operation != "upload":
            fail("invalidParameter", f"operation must be upload or delete, got {operation!r}", "operation")
            return
        if not isinstance(media, str | SpilledString) or (isinstance(media, str) and not media):
            fail("missingParameter", "media is required: raw base64, a data URI, or an http(s) URL", "media")
            return
        try:
            if isinstance(media, str) and media.startswith(("http://", "https://")):
                stored = self.media.save_file(await self.fetcher.fetch(media))
            else:
                stored = await anyio.to_thread.run_sync(self.media.save_base64, media)
        except (MediaDecodeError, MediaRefError) as exc:
            fail("invalidMedia", str(exc), "media")
            return
        self.stats.bump("uploads")
        self.stats.bump("upload_bytes", stored.size)
        answer.data.append(
            {
                "taskType": "mediaStorage",
                "taskUUID": task_uuid,
                "mediaUUID": stored.media_uuid,
                "mediaURL": f"{media_url}/{stored.name}",
            }
        )

    # ------------------------------------------------------------------ outputs

    def output_for(self, name: str) -> tuple[Job, Result] | None:
        video_uuid, _, ext = name.partition(".")
        found = self.results.get(video_uuid)
        if found is None or found[0].ext != ext or not found[0].is_done(self.clock.now()):
            return None
        if found[0].failure is not None:
            return None
        return found

    def is_expired(self, job: Job) -> bool:
        if self.clock.now() < job.expires_at():
            return False
        if not job.expired:
            job.expired = True
            if job.output is not None:
                job.output.unlink(missing_ok=True)
                job.output = None
            for path in job.variation_outputs.values():
                path.unlink(missing_ok=True)
            job.variation_outputs.clear()
        return True

    async def ensure_rendered(self, job: Job, index: int = 0) -> Path:
        """Render a job's output once (the first caller renders, the others wait), off the loop.

        Result `index` of a numberResults > 1 task gets a rendering of its own when the config moves
        its audio (`variation_audio_offsets`), so variations differ as a model's would; otherwise all
        results share one rendering.
        """
        offset = variation_audio_offset(self.config.variation_audio_offsets, index)
        async with job.render_lock:
            known = job.variation_outputs.get(index) if offset else job.output
            if known is not None and known.exists():
                return known
            name = f"{job.task_uuid}.v{index}.{job.ext}" if offset else f"{job.task_uuid}.{job.ext}"
            target = await self._render(job, self.outputs_dir / name, offset)
            if offset:
                job.variation_outputs[index] = target
            else:
                job.output = target
            return target

    async def _render(self, job: Job, target: Path, audio_offset: float) -> Path:
        video, source = job.video, job.source
        assert video is not None and source is not None, "only a finished job is rendered"
        async with self._render_slots:
            await anyio.to_thread.run_sync(
                lambda: render(
                    job.request,
                    video=video,
                    source=source,
                    audio=job.audio,
                    segment_audio=job.segment_audio,
                    output=target,
                    timeout=self.config.render_timeout,
                    audio_offset=audio_offset,
                )
            )
        self.stats.bump("renders")
        return target

    # ------------------------------------------------------------------ webhooks, uploadEndpoint

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _deliver(self, job: Job) -> None:
        await job.settled.wait()
        await self.clock.sleep_until(job.finish_at)
        request = job.request
        outputs_url = job.outputs_url
        if job.failure is not None:
            if request.webhook_url:
                body: Any = (
                    {"errors": [job.failure_error()]}
                    if job.failure.shape == "errors"
                    else job.failure_data_item()
                )
                await self._send(request.webhook_url, "POST", json_body=body, counter="webhooks_sent")
            return
        for result in job.results:
            if request.upload_endpoint:
                try:
                    output = await self.ensure_rendered(job, job.results.index(result))
                except MediaError as exc:
                    log.warning("emulator: rendering %s failed: %s", job.task_uuid, exc)
                    return
                await self._send(request.upload_endpoint, "PUT", file=output, counter="upload_endpoint_puts")
            if request.webhook_url:
                item = job.result_item(result, outputs_url)
                body = {"data": [item]} if self.config.webhook_shape == "data" else item
                await self._send(request.webhook_url, "POST", json_body=body, counter="webhooks_sent")

    async def _send(
        self, url: str, method: str, *, counter: str, json_body: Any = None, file: Path | None = None
    ) -> None:
        """One call with retries on non-2xx and connection errors: 0.25 s, doubling."""
        assert self.http is not None
        delay = 0.25
        for attempt in range(self.config.webhook_retries):
            try:
                if file is not None:
                    # Streamed with a Content-Length: presigned storage URLs refuse chunked uploads.
                    response = await self.http.request(
                        method,
                        url,
                        content=_file_chunks(file),
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(file.stat().st_size),
                        },
                    )
                else:
                    response = await self.http.request(method, url, json=json_body)
                if 200 <= response.status_code < 300:
                    self.stats.bump(counter)
                    return
            except httpx.HTTPError:
                pass
            if attempt + 1 < self.config.webhook_retries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)
        self.stats.bump("webhook_failures")


async def _file_chunks(path: Path, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := await anyio.to_thread.run_sync(fh.read, size):
            yield chunk


def _ref_paths(request: Sync3Request) -> list[tuple[str, str]]:
    """(JSON path, reference) of every media reference of a request."""
    refs = [("inputs.video", request.inputs.video)]
    if request.inputs.audio:
        refs.append(("inputs.audio", request.inputs.audio))
    for i, seg in enumerate(request.settings.segments or [] if request.settings else []):
        refs.append((f"settings.segments[{i}].audio", seg.audio))
    return refs


def _rule_parameters(message: str) -> list[str] | None:
    """The fields a cross-field rule names (the service gives `parameter` as a list for these)."""
    if "exactly one of" in message:
        return ["inputs.audio", "speech", "settings.segments"]
    return None
