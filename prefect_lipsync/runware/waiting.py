"""Waiting for results: one registry of waiters per client, fed by one batched poller or a webhook.

Any number of coroutines `await waiter.wait(task_uuid, ...)`; the poller sends every taskUUID
that is due in one getResponse POST per tick (chunked), matches answers by taskUUID, and wakes a
waiter in the tick its job finishes. Each task keeps its own cadence (first poll after
`first_delay`, then `interval` growing by `factor` up to `max_interval`); tasks due within
`coalesce` seconds of each other ride in the same POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prefect_lipsync.runware.errors import (
    NOT_FOUND_CODE,
    AuthError,
    InsufficientCredits,
    JobTimeout,
    RequestRejected,
    RunwareError,
    TaskNotKnown,
    code_family,
    error_from_item,
)
from prefect_lipsync.runware.models import ErrorItem, Sync3Result, parse_result_item
from prefect_lipsync.runware.transport import Transport

log = logging.getLogger("prefect_lipsync.runware")

#: (taskUUID, status, progress 0-100 or None), called when a task's status or progress changes.
ProgressCallback = Callable[[str, str, float | None], None]

_EARLY_MAX = 10_000


@dataclass(frozen=True)
class PollPolicy:
    """The polling cadence and batching."""

    first_delay: float = 1.0
    interval: float = 0.5
    factor: float = 1.5
    max_interval: float = 10.0
    batch_size: int = 100
    #: `taskNotFound` this soon after the wait began is read as "not visible yet", not as a failure.
    not_found_grace: float = 30.0
    coalesce: float = 0.25


@dataclass
class _Watch:
    task_uuid: str
    number_results: int
    started: float
    next_poll_at: float
    interval: float
    results: dict[str, Sync3Result] = field(default_factory=dict)
    futures: list[asyncio.Future[list[Sync3Result]]] = field(default_factory=list)
    status: str | None = None
    progress: float | None = None


def _result_key(result: Sync3Result, seen: int) -> str:
    return result.video_uuid or result.video_url or f"#{seen}"


class Waiter:
    """The registry of waiting jobs; with `poll=True` it polls getResponse for them itself."""

    def __init__(
        self,
        transport: Transport | None,
        policy: PollPolicy,
        *,
        poll: bool = True,
        progress: ProgressCallback | None = None,
    ) -> None:
        self._transport = transport
        self.policy = policy
        self.polling = poll and transport is not None
        self._progress = progress
        self._watches: dict[str, _Watch] = {}
        self._early: OrderedDict[str, list[Sync3Result | ErrorItem]] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: False once the service refused a multi-task getResponse POST: one per POST from then on.
        self.batch_polls = True
        #: TaskUUIDs the service has reported a status or result for: it accepted them.
        self.reported: set[str] = set()
        #: Asked when a waited-for task turns out unknown: did the service ever accept it?
        self.accepted_by: Callable[[str], bool | None] = lambda task_uuid: None
        self.polls_sent = 0

    # ------------------------------------------------------------------ waiting

    async def wait(
        self, task_uuid: str, number_results: int = 1, timeout: float | None = None
    ) -> list[Sync3Result]:
        """The `number_results` results of a task; raises TaskFailed & co, or JobTimeout."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Sync3Result]] = loop.create_future()
        watch = self._watches.get(task_uuid)
        if watch is None:
            now = loop.time()
            watch = _Watch(
                task_uuid=task_uuid,
                number_results=number_results,
                started=now,
                next_poll_at=now + self.policy.first_delay,
                interval=self.policy.interval,
            )
            self._watches[task_uuid] = watch
            watch.futures.append(future)
            for item in list(self._early.get(task_uuid, [])):  # webhook results that came first
                self._apply(watch, item)
        else:
            watch.number_results = max(watch.number_results, number_results)
            watch.futures.append(future)
        if not future.done():
            self._ensure_running()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise JobTimeout(
                f"job did not finish within {timeout:g} s (last status: {watch.status or 'unknown'});"
                " it may still finish and be billed",
                task_uuid=task_uuid,
            ) from None
        finally:
            if future in watch.futures:
                watch.futures.remove(future)
            if not watch.futures and self._watches.get(task_uuid) is watch:
                del self._watches[task_uuid]

    @property
    def in_flight(self) -> list[str]:
        return list(self._watches)

    # ------------------------------------------------------------------ feeding

    def feed(self, item: Sync3Result | ErrorItem) -> None:
        """One result or error for a task (from a poll or a webhook); safe to call for any task."""
        task_uuid = item.task_uuid
        if not task_uuid:
            return
        if not self.polling:
            # Webhooks come once: keep every item (bounded) for a waiter that registers later.
            self._early.setdefault(task_uuid, []).append(item)
            self._early.move_to_end(task_uuid)
            while len(self._early) > _EARLY_MAX:
                self._early.popitem(last=False)
        watch = self._watches.get(task_uuid)
        if watch is not None:
            self._apply(watch, item)

    def _apply(self, watch: _Watch, item: Sync3Result | ErrorItem) -> None:
        task_uuid = watch.task_uuid
        if isinstance(item, ErrorItem):
            self._on_error(watch, item)
            return
        self.reported.add(task_uuid)
        if item.is_success:
            watch.results.setdefault(_result_key(item, len(watch.results)), item)
            if len(watch.results) >= watch.number_results:
                self._notify(watch, "success", 100.0)
                self._finish(watch, list(watch.results.values())[: watch.number_results])
            else:
                self._notify(watch, "processing", item.progress)
        elif item.is_error:  # a result model that carries an error
            self._on_error(watch, item.error or ErrorItem(code="unknown", taskUUID=task_uuid))
        else:
            self._notify(watch, item.status or "processing", item.progress)

    def _on_error(self, watch: _Watch, item: ErrorItem) -> None:
        loop_time = asyncio.get_running_loop().time()
        if item.code == NOT_FOUND_CODE and loop_time - watch.started < self.policy.not_found_grace:
            return  # just submitted: the service may not show it yet
        self._notify(watch, "error", None)
        if item.code == NOT_FOUND_CODE:
            # Past the grace period: the service has no record of it, and waiting cannot help.
            accepted = True if watch.task_uuid in self.reported else self.accepted_by(watch.task_uuid)
            self._finish(watch, TaskNotKnown(watch.task_uuid, accepted=accepted, code=item.code))
            return
        self._finish(watch, error_from_item(item, phase="task", task_uuid=watch.task_uuid))

    def fail(self, task_uuid: str, exc: RunwareError) -> None:
        watch = self._watches.get(task_uuid)
        if watch is not None:
            self._finish(watch, exc)

    def _finish(self, watch: _Watch, outcome: list[Sync3Result] | RunwareError) -> None:
        self._watches.pop(watch.task_uuid, None)
        for future in watch.futures:
            if future.done():
                continue
            if isinstance(outcome, RunwareError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _notify(self, watch: _Watch, status: str, progress: float | None) -> None:
        if (status, progress) == (watch.status, watch.progress):
            return
        watch.status, watch.progress = status, progress
        if self._progress is None:
            return
        try:
            self._progress(watch.task_uuid, status, progress)
        except Exception:  # a broken callback must not stop the waiting
            log.exception("progress callback failed for task %s", watch.task_uuid)

    # ------------------------------------------------------------------ polling

    def _ensure_running(self) -> None:
        self._wakeup.set()
        if self.polling and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="runware-poller")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._watches:
            self._wakeup.clear()
            now = loop.time()
            earliest = min(w.next_poll_at for w in self._watches.values())
            if earliest > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), earliest - now)
                continue
            # Tasks nearly due ride along (within half their own interval): one POST, not two.
            due = [
                w
                for w in self._watches.values()
                if w.next_poll_at <= now + min(self.policy.coalesce, w.interval / 2)
            ]
            try:
                await self.poll_once([w.task_uuid for w in due])
            except Exception:  # keep polling the others; deadlines bound every waiter
                log.exception("Runware poll failed")
            after = loop.time()
            for w in due:
                w.next_poll_at = after + w.interval
                w.interval = min(w.interval * self.policy.factor, self.policy.max_interval)

    async def poll_once(self, task_uuids: Sequence[str]) -> None:
        """One getResponse round for these tasks: batched POSTs in parallel (or one per task)."""
        size = self.policy.batch_size if self.batch_polls else 1
        chunks = [list(task_uuids[i : i + size]) for i in range(0, len(task_uuids), size)]
        await asyncio.gather(*(self._poll_chunk(c) for c in chunks))

    async def _poll_chunk(self, chunk: list[str]) -> None:
        assert self._transport is not None
        tasks = [{"taskType": "getResponse", "taskUUID": u} for u in chunk]
        self.polls_sent += 1
        try:
            envelope = await self._transport.post(tasks, what=f"getResponse of {len(chunk)} tasks")
        except RunwareError as exc:
            await self._on_poll_error(chunk, exc)
            return
        for raw in envelope.data:
            self.feed(parse_result_item(raw))
        for err in envelope.errors:
            if err.task_uuid is None and len(chunk) == 1:
                err.task_uuid = chunk[0]
            self.feed(err)

    async def _on_poll_error(self, chunk: list[str], exc: RunwareError) -> None:
        if exc.transient:  # retries are spent; try again next tick
            log.warning("Runware poll of %d tasks failed for now: %s", len(chunk), exc)
            return
        if isinstance(exc, AuthError | InsufficientCredits):
            for u in chunk:
                self.fail(u, exc)
            return
        attributed = [e for e in exc.errors if e.task_uuid in chunk]
        if len(chunk) == 1:
            if attributed or exc.errors:
                for e in attributed or exc.errors:
                    e.task_uuid = e.task_uuid or chunk[0]
                    self.feed(e)
            else:
                self.fail(chunk[0], exc)
            return
        if attributed and all(code_family(e.code) == "notFound" for e in attributed):
            for e in attributed:
                self.feed(e)
            return
        if isinstance(exc, RequestRejected) or exc.status_code == 400:
            # The service refuses several getResponse tasks in one POST: one per POST from now on.
            log.warning("Runware refused a batched getResponse (%s); polling one task per request", exc)
            self.batch_polls = False
            await self.poll_once(chunk)
            return
        for u in chunk:
            self.fail(u, exc)
