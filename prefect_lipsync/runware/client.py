"""The async Runware client for sync-3: upload, submit, wait, download.

    async with RunwareClient(api_key=key) as client:
        media = await client.upload("face.mp4")              # MediaUpload(media_uuid, media_url)
        results = await client.lipsync_many(requests)        # submit all, wait for all, same order

Submits go in batches (`submit_batch_size` tasks per POST) with content-derived taskUUIDs, so a
retried or re-run submit cannot create a second paid task (`conflictTaskUUID` counts as
accepted). One poller per client serves every waiter, or a `WebhookReceiver` does.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, overload

import httpx
from pydantic import SecretStr

from prefect_lipsync.media.hashing import cached_file_sha256
from prefect_lipsync.runware.downloads import DownloadPolicy, download
from prefect_lipsync.runware.errors import (
    AuthError,
    InsufficientCredits,
    JobTimeout,
    LocalMediaError,
    RequestRejected,
    RunwareError,
    ServiceError,
    TransientTaskError,
    code_family,
    error_from_item,
)
from prefect_lipsync.runware.ids import derive_task_uuid, retry_task_uuid
from prefect_lipsync.runware.models import ErrorItem, MediaUpload, Sync3Request, Sync3Result
from prefect_lipsync.runware.transport import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    AttemptDeadline,
    RetryPolicy,
    Transport,
    coerce_secret,
)
from prefect_lipsync.runware.uploads import Source, UploadCache, Uploader, local_path
from prefect_lipsync.runware.waiting import PollPolicy, ProgressCallback, Waiter
from prefect_lipsync.runware.webhooks import WebhookReceiver
from prefect_lipsync.tls import shared_tls_context

log = logging.getLogger("prefect_lipsync.runware")

#: Submit to last result, resubmits included: the same default as the run settings' job_timeout_s.
DEFAULT_JOB_TIMEOUT = 3600.0
_TRANSIENT_FAMILIES = frozenset({"rateLimit", "server", "timeout"})


@dataclass(frozen=True)
class Submitted:
    """A request as it was (or will be) sent: its taskUUID and how many results it makes."""

    task_uuid: str
    number_results: int
    request: Sync3Request


class RunwareClient:
    """Async client for sync-3 on Runware; an async context manager that owns its connections."""

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        download_policy: DownloadPolicy | None = None,
        job_timeout: float = DEFAULT_JOB_TIMEOUT,
        submit_batch_size: int = 50,
        max_task_retries: int = 1,
        max_connections: int = 20,
        webhook: WebhookReceiver | None = None,
        upload_cache: UploadCache | None = None,
        progress: ProgressCallback | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        attempt_deadline: AttemptDeadline | None = None,
    ) -> None:
        """
        Args:
            api_key: The Runware API key (kept only in a SecretStr). None only for a local emulator.
            base_url: The API endpoint.
            timeout: Timeout of each connect, read and write of every HTTP call.
            retry: How transient HTTP failures are retried.
            poll: The polling cadence and batch size.
            download_policy: Retries and chunking of result downloads.
            job_timeout: Default seconds a job may take from submit to its last result.
            submit_batch_size: Tasks per submit POST.
            max_task_retries: How many times a task that failed transiently (provider timeout) is
                resubmitted by `lipsync`/`lipsync_many`. Each resubmit is a NEW paid task.
            max_connections: Concurrent HTTP connections.
            webhook: Wait by this receiver instead of polling; requests get its webhookURL.
            upload_cache: Where uploads are remembered by content hash (default: this client only).
            progress: Called with (taskUUID, status, progress) when a task's state changes.
            http_transport: An httpx transport (for tests or a proxy).
            attempt_deadline: The most one HTTP attempt (upload, submit, poll) may take, connect
                to last byte; past it the attempt is a transient error and is retried. Downloads
                take theirs from `download_policy.attempt`.
        """
        self._api_key = coerce_secret(api_key)
        if isinstance(timeout, int | float):
            timeout = httpx.Timeout(float(timeout))
        self._transport = Transport(
            api_key=self._api_key,
            base_url=base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            transport=http_transport,
            max_connections=max_connections,
            attempt_deadline=attempt_deadline,
        )
        # Result URLs are third-party CDN links: a separate client that never sends the key.
        self._downloads = httpx.AsyncClient(
            timeout=timeout, follow_redirects=True, transport=http_transport, verify=shared_tls_context()
        )
        self._download_policy = download_policy or DownloadPolicy()
        self.job_timeout = job_timeout
        self.submit_batch_size = max(1, submit_batch_size)
        self.max_task_retries = max(0, max_task_retries)
        self.webhook = webhook
        self._waiter = Waiter(self._transport, poll or PollPolicy(), poll=webhook is None, progress=progress)
        self._uploader = Uploader(self._transport, upload_cache)
        self._unsubscribe: Callable[[], None] | None = None
        #: TaskUUIDs whose submit the service answered as accepted (or as already known), and
        #: those it refused outright (an answer, not a lost one).
        self._accepted: set[str] = set()
        self._refused: set[str] = set()
        self._waiter.accepted_by = self.was_accepted
        #: False once the service refused a multi-task submit POST without naming a task.
        self.batch_submits = True

    def __repr__(self) -> str:
        mode = "webhook" if self.webhook else "polling"
        return f"RunwareClient(base_url={self.base_url!r}, api_key=**********, mode={mode!r})"

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent to the API so far (attempts included)."""
        return self._transport.requests_sent

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self.webhook is not None and self._unsubscribe is None:
            loop = asyncio.get_running_loop()
            waiter = self._waiter

            def hand_over(item: Sync3Result | ErrorItem) -> None:
                # The receiver may run in another thread (uvicorn): feed the waiter in our loop.
                loop.call_soon_threadsafe(waiter.feed, item)

            self._unsubscribe = self.webhook.subscribe(hand_over)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self._waiter.aclose()
        await self._transport.aclose()
        await self._downloads.aclose()

    # ------------------------------------------------------------------ uploads

    async def upload(self, source: Source) -> MediaUpload:
        """Upload a local file (path or file:// URI) or bytes with mediaStorage, once per content."""
        return await self._uploader.upload(source)

    async def upload_local_refs(
        self, request: Sync3Request, *, nonce: str | int | None = None
    ) -> Sync3Request:
        """Upload the request's file:// media and point it at the uploads.

        The taskUUID is derived first, from the request with each local file replaced by its
        content hash: a re-run of the same job from the same files keeps its UUID even though
        the upload URLs change.
        """
        refs = request.local_refs()
        if not refs:
            return request
        uploads = dict(zip(refs, await asyncio.gather(*(self.upload(r) for r in refs)), strict=True))
        if request.task_uuid is None:
            task_uuid = await asyncio.to_thread(content_task_uuid, request, nonce)
            request = request.model_copy(update={"task_uuid": task_uuid})
        wire = request.to_wire()
        wire = _replace_refs(
            wire, {r: u.media_uuid for r, u in uploads.items()}, segment=False, inputs_only=True
        )
        wire = _replace_refs(
            wire, {r: (u.media_url or u.media_uuid) for r, u in uploads.items()}, segment=True
        )
        return Sync3Request.model_validate(wire)

    # ------------------------------------------------------------------ submit

    def prepare(self, request: Sync3Request, *, nonce: str | int | None = None) -> Submitted:
        """The request as it will be sent: taskUUID set, webhookURL set in webhook mode; no I/O."""
        local = request.local_refs()
        if local:
            names = ", ".join(Path(local_path(r)).name for r in local)
            raise LocalMediaError(
                f"the request still points at local files ({names}): upload them first with"
                " client.upload() or client.upload_local_refs(request)",
                parameter="inputs",
                task_uuid=request.task_uuid,
            )
        update: dict[str, Any] = {}
        if request.task_uuid is None:
            update["task_uuid"] = derive_task_uuid(request, nonce)
        if self.webhook is not None:
            update["webhook_url"] = self.webhook.webhook_url()
        sent = request.model_copy(update=update) if update else request
        assert sent.task_uuid is not None
        return Submitted(sent.task_uuid, sent.number_results, sent)

    async def submit(
        self, request: Sync3Request, *, nonce: str | int | None = None, deadline: float | None = None
    ) -> str:
        """Submit one request; returns its taskUUID (already known to the service is fine)."""
        return (await self.submit_many([request], nonce=nonce, deadline=deadline))[0]

    async def submit_many(
        self,
        requests: Sequence[Sync3Request],
        *,
        nonce: str | int | None = None,
        deadline: float | None = None,
    ) -> list[str]:
        """Submit requests in batches; returns their taskUUIDs in order. Raises the first refusal.

        `deadline` (a time of the running loop) is the job's own: no attempt or retry outlives it.
        """
        prepared = [self.prepare(r, nonce=nonce) for r in requests]
        outcomes = await self._submit_prepared(prepared, deadline=deadline)
        for p in prepared:
            err = outcomes.get(p.task_uuid)
            if err is not None:
                raise err
        return [p.task_uuid for p in prepared]

    def was_accepted(self, task_uuid: str) -> bool | None:
        """Did the service ever accept this taskUUID? True: this client saw it accept the submit
        (or report on the task); False: it refused the submit and never reported on the task;
        None: this client cannot know (it did not submit it, or every answer was lost).

        A job runner may resubmit a task the service does not know under the same UUID only
        where it was never accepted; an accepted one is paid for again only with a new nonce.
        """
        if task_uuid in self._accepted or task_uuid in self._waiter.reported:
            return True
        return False if task_uuid in self._refused else None

    async def _submit_prepared(
        self, prepared: Sequence[Submitted], *, deadline: float | None = None
    ) -> dict[str, RunwareError | None]:
        """Submit each distinct task; taskUUID -> None (accepted) or the error that refused it."""
        outcome = await self._submit_rounds(prepared, deadline)
        for task_uuid, err in outcome.items():
            if err is None:
                self._accepted.add(task_uuid)
            elif not err.transient and not isinstance(err, JobTimeout):
                self._refused.add(task_uuid)  # the service answered, and the answer was no
        return outcome

    async def _submit_rounds(
        self, prepared: Sequence[Submitted], deadline: float | None
    ) -> dict[str, RunwareError | None]:
        pending = {p.task_uuid: p.request.to_wire() for p in prepared}
        outcome: dict[str, RunwareError | None] = {}
        policy = self._transport.retry
        loop = asyncio.get_running_loop()
        for round_no in range(policy.attempts):
            size = self.submit_batch_size if self.batch_submits else 1
            items = list(pending.items())
            chunks = [dict(items[i : i + size]) for i in range(0, len(items), size)]
            results = await asyncio.gather(*(self._submit_chunk(c, deadline) for c in chunks))
            retry_later: dict[str, dict[str, Any]] = {}
            for chunk, result in zip(chunks, results, strict=True):
                for task_uuid, verdict in result.items():
                    if isinstance(verdict, str):  # "again"
                        retry_later[task_uuid] = chunk[task_uuid]
                        outcome.setdefault(task_uuid, None)
                    else:
                        outcome[task_uuid] = verdict
            if not retry_later:
                break
            pending = retry_later
            pause = min(policy.initial_delay * 2**round_no, policy.max_delay)
            if deadline is not None and loop.time() + pause >= deadline:
                for task_uuid in pending:
                    outcome[task_uuid] = JobTimeout(
                        "the job's deadline passed while the service kept refusing its submit for now",
                        task_uuid=task_uuid,
                    )
                break
            await asyncio.sleep(pause)
        else:
            for task_uuid in pending:
                outcome[task_uuid] = ServiceError(
                    "the service kept refusing the submit for now (rate limit or server trouble)",
                    task_uuid=task_uuid,
                )
        return outcome

    async def _submit_chunk(
        self, chunk: dict[str, dict[str, Any]], deadline: float | None = None
    ) -> dict[str, RunwareError | str | None]:
        """One submit POST. Per task: None = accepted, an error = refused, "again" = submit again."""
        uuids = list(chunk)
        verdicts: dict[str, RunwareError | str | None] = {}
        try:
            envelope = await self._transport.post(
                list(chunk.values()), what=f"submit of {len(chunk)} tasks", deadline=deadline
            )
        except RunwareError as exc:
            if len(chunk) == 1 and exc.task_uuid is None:
                exc.task_uuid = uuids[0]  # the error of a one-task submit is that task's
            attributed = [e for e in exc.errors if e.task_uuid in chunk]
            if (
                exc.transient
                or isinstance(exc, AuthError | InsufficientCredits)
                or (not attributed and len(chunk) == 1)
            ):
                if len(chunk) == 1 and any(code_family(e.code) == "conflict" for e in exc.errors):
                    return {uuids[0]: None}
                return dict.fromkeys(uuids, exc)
            if not attributed:
                if isinstance(exc, RequestRejected):
                    log.warning("Runware refused a batched submit (%s); submitting one task per request", exc)
                    self.batch_submits = False
                    return dict.fromkeys(uuids, "again")
                return dict.fromkeys(uuids, exc)
            for err in attributed:
                assert err.task_uuid is not None
                verdicts[err.task_uuid] = self._submit_verdict(err, exc.status_code)
            # The others were not named: they may or may not be in; resubmitting is safe (same UUID).
            for task_uuid in uuids:
                verdicts.setdefault(task_uuid, "again")
            return verdicts
        for err in envelope.errors:
            if err.task_uuid in chunk:
                assert err.task_uuid is not None
                verdicts[err.task_uuid] = self._submit_verdict(err, None)
            elif err.task_uuid is None and len(chunk) == 1:
                verdicts[uuids[0]] = self._submit_verdict(err, None)
        for task_uuid in uuids:
            verdicts.setdefault(task_uuid, None)
        return verdicts

    @staticmethod
    def _submit_verdict(err: Any, status: int | None) -> RunwareError | str | None:
        family = code_family(err.code)
        if family == "conflict":
            return None  # the service already has this task: a retried or re-run submit
        if family in _TRANSIENT_FAMILIES:
            return "again"
        return error_from_item(err, status=status)

    # ------------------------------------------------------------------ wait

    async def wait(
        self, task_uuid: str, number_results: int = 1, timeout: float | None = None
    ) -> list[Sync3Result]:
        """Wait for a submitted task's results (shares the client's one poller)."""
        return await self._waiter.wait(
            task_uuid, number_results, self.job_timeout if timeout is None else timeout
        )

    async def wait_many(
        self, task_uuids: Sequence[str], number_results: int | Sequence[int] = 1, timeout: float | None = None
    ) -> list[list[Sync3Result]]:
        """Wait for several tasks at once; results in the same order. Raises the first failure."""
        counts = (
            [number_results] * len(task_uuids) if isinstance(number_results, int) else list(number_results)
        )
        return list(
            await asyncio.gather(*(self.wait(u, n, timeout) for u, n in zip(task_uuids, counts, strict=True)))
        )

    @property
    def in_flight(self) -> list[str]:
        """TaskUUIDs someone is waiting for right now."""
        return self._waiter.in_flight

    # ------------------------------------------------------------------ submit + wait

    async def lipsync(
        self, request: Sync3Request, *, timeout: float | None = None, nonce: str | int | None = None
    ) -> list[Sync3Result]:
        """Submit one request and wait for its results."""
        return (await self.lipsync_many([request], timeout=timeout, nonce=nonce))[0]

    @overload
    async def lipsync_many(
        self,
        requests: Sequence[Sync3Request],
        *,
        timeout: float | None = ...,
        nonce: str | int | None = ...,
        return_exceptions: Literal[False] = ...,
    ) -> list[list[Sync3Result]]: ...

    @overload
    async def lipsync_many(
        self,
        requests: Sequence[Sync3Request],
        *,
        timeout: float | None = ...,
        nonce: str | int | None = ...,
        return_exceptions: Literal[True],
    ) -> list[list[Sync3Result] | RunwareError]: ...

    async def lipsync_many(
        self,
        requests: Sequence[Sync3Request],
        *,
        timeout: float | None = None,
        nonce: str | int | None = None,
        return_exceptions: bool = False,
    ) -> list[list[Sync3Result]] | list[list[Sync3Result] | RunwareError]:
        """Submit all requests (batched), wait for all (one poller); results in request order.

        `timeout` bounds each job from its submit to its last result. A job that fails with a
        transient task error is resubmitted up to `max_task_retries` times under a new derived
        taskUUID (a new paid task; the same UUID on every re-run, so a crash never doubles it).
        With `return_exceptions`, a failed job's slot holds its RunwareError instead of raising.
        """
        limit = self.job_timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + limit
        prepared = [self.prepare(r, nonce=nonce) for r in requests]
        submitted = await self._submit_prepared(prepared, deadline=deadline)

        async def run(job: Submitted) -> list[Sync3Result]:
            err = submitted.get(job.task_uuid)
            if err is not None:
                raise err
            return await self._run_submitted(job, deadline=deadline, limit=limit, accepted={job.task_uuid})

        outcomes = await asyncio.gather(*(run(job) for job in prepared), return_exceptions=True)
        settled: list[list[Sync3Result] | RunwareError] = []
        for value in outcomes:
            if isinstance(value, BaseException) and not isinstance(value, RunwareError):
                raise value  # a bug or a cancellation, not a service answer
            settled.append(value)
        if return_exceptions:
            return settled
        for value in settled:
            if isinstance(value, RunwareError):
                raise value
        return [v for v in settled if isinstance(v, list)]

    async def run_task(
        self,
        request: Sync3Request,
        *,
        timeout: float | None = None,
        max_task_retries: int | None = None,
        accepted: Collection[str] = (),
        on_accepted: Callable[[str], None] | None = None,
    ) -> list[Sync3Result]:
        """Submit one prepared request (unless the service already `accepted` it) and wait for it.

        The one resubmit policy: a task that fails transiently is resubmitted under
        `retry_task_uuid` (a new paid task, the same UUID on every re-run) up to `max_task_retries`
        times, all within one deadline of `timeout` seconds from now. `on_accepted` is called with
        each taskUUID the moment the service has it, so a caller can write down what is paid for.
        A taskUUID in `accepted` is never submitted again: it is waited for.
        """
        limit = self.job_timeout if timeout is None else timeout
        job = self.prepare(request)
        return await self._run_submitted(
            job,
            deadline=asyncio.get_running_loop().time() + limit,
            limit=limit,
            accepted=set(accepted),
            on_accepted=on_accepted,
            max_task_retries=max_task_retries,
        )

    async def _run_submitted(
        self,
        job: Submitted,
        *,
        deadline: float,
        limit: float,
        accepted: set[str],
        on_accepted: Callable[[str], None] | None = None,
        max_task_retries: int | None = None,
    ) -> list[Sync3Result]:
        retries = self.max_task_retries if max_task_retries is None else max(0, max_task_retries)
        loop = asyncio.get_running_loop()
        for attempt in range(retries + 1):
            task_uuid = job.task_uuid if attempt == 0 else retry_task_uuid(job.task_uuid, attempt)
            if task_uuid not in accepted:
                sent = job.request.model_copy(update={"task_uuid": task_uuid})
                submitted = await self._submit_prepared(
                    [Submitted(task_uuid, job.number_results, sent)], deadline=deadline
                )
                verdict = submitted[task_uuid]
                if verdict is not None:
                    raise verdict
                accepted.add(task_uuid)
                if on_accepted is not None:
                    on_accepted(task_uuid)
            left = deadline - loop.time()
            if left <= 0:
                raise JobTimeout(f"job did not finish within {limit:g} s", task_uuid=task_uuid)
            try:
                return await self.wait(task_uuid, job.number_results, left)
            except TransientTaskError as exc:
                if attempt >= retries:
                    raise
                log.warning(
                    "task %s failed transiently (%s); resubmitting as %s (a new paid task)",
                    exc.task_uuid,
                    exc.code,
                    retry_task_uuid(job.task_uuid, attempt + 1),
                )
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ download

    async def download(
        self,
        result: Sync3Result | str,
        dest: str | os.PathLike[str],
        *,
        policy: DownloadPolicy | None = None,
        expected_duration_s: float | None = None,
        deadline: float | None = None,
    ) -> Path:
        """Stream a result's video (or a URL) to `dest`, atomically; the file exists only if complete.

        Complete means every byte of its Content-Length arrived or, when the server sends none,
        that it decodes to `expected_duration_s` (the length the result should have; without
        it such a download is refused). `deadline` is the job's own, as a time of the running
        loop: no attempt outlives it.
        """
        return await download(
            self._downloads,
            result,
            dest,
            policy=policy or self._download_policy,
            expected_duration_s=expected_duration_s,
            deadline=deadline,
        )


def content_task_uuid(
    request: Sync3Request, nonce: str | int | None = None, *, known: Mapping[str, str] | None = None
) -> str:
    """The taskUUID of a request as it will be sent, known before any upload.

    Each local file counts by its content hash, not by its upload URL: the same job from the same
    files keeps its UUID however often (and wherever) it is uploaded. `known` gives the content key
    of files not written yet (rendered audio: the key of its source and operation). Reads the other
    files (hashing is cached by path, size and mtime): call it off the event loop.
    """
    if request.task_uuid is not None:
        return request.task_uuid
    known = known or {}
    hashes = {r: known.get(r) or cached_file_sha256(local_path(r)) for r in request.local_refs()}
    keyed = _replace_refs(request.to_wire(), {r: f"sha256:{h}" for r, h in hashes.items()}, segment=False)
    return derive_task_uuid(keyed, nonce)


def with_media_refs(request: Sync3Request, mapping: Mapping[str, str]) -> Sync3Request:
    """The request with media references swapped (inputs and segment audio), e.g. s3:// for presigned URLs."""
    wire = _replace_refs(request.to_wire(), dict(mapping), segment=False)
    return Sync3Request.model_validate(wire)


def _replace_refs(
    wire: dict[str, Any], mapping: dict[str, str], *, segment: bool, inputs_only: bool = False
) -> dict[str, Any]:
    """A copy of a wire request with media references swapped (inputs, or segment audio)."""
    out: dict[str, Any] = dict(wire)
    if not segment:
        inputs = dict(out.get("inputs") or {})
        for key in ("video", "audio"):
            if inputs.get(key) in mapping:
                inputs[key] = mapping[inputs[key]]
        out["inputs"] = inputs
        if inputs_only:
            return out
    settings = out.get("settings")
    if isinstance(settings, dict) and isinstance(settings.get("segments"), list):
        settings = dict(settings)
        settings["segments"] = [
            {**s, "audio": mapping.get(s.get("audio"), s.get("audio"))} for s in settings["segments"]
        ]
        out["settings"] = settings
    return out
