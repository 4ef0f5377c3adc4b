"""Accepted videoInference tasks, their results and outputs, the clock they run on, and counters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_lipsync.emulator.errors import error_item
from prefect_lipsync.emulator.faults import FailureShape
from prefect_lipsync.emulator.render import EXTENSIONS, SourceInfo
from prefect_lipsync.runware.models import Sync3Request

EMULATOR_NOTE = "local emulator: dub preview, lips are not moved"
TASK_TYPE = "videoInference"


class Clock:
    """Monotonic time that tests may move forward (`advance`), waking whoever sleeps on it."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._changed = asyncio.Event()

    def now(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds
        # Wake every sleeper: each re-checks its deadline against the new time.
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep_until(self, deadline: float) -> None:
        while (remaining := deadline - self.now()) > 0:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)


class Stats:
    """Counters for GET /_emulator/stats; `requests` counts tasks by taskType."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.task_uuids: set[str] = set()

    def bump(self, name: str, n: int = 1) -> None:
        self.counts[name] += n


@dataclass
class Result:
    """One of a task's numberResults outputs."""

    video_uuid: str
    seed: int
    nsfw: bool
    first_get_fault: int | None = None


@dataclass
class Failure:
    code: str
    message: str
    shape: FailureShape
    parameter: str | None = None


@dataclass
class Job:
    """An accepted videoInference task: finished once its inputs are in (`preparing` is over) and
    the clock passes `finish_at`."""

    task_uuid: str
    request: Sync3Request
    accepted_at: float
    finish_at: float
    results: list[Result]
    failure: Failure | None
    ttl: int
    outputs_url: str
    preparing: bool = False  # URL inputs still being fetched (the task was acknowledged already)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set when preparing is over
    video: Path | None = None
    source: SourceInfo | None = None
    audio: Path | None = None
    segment_audio: list[Path] = field(default_factory=list)
    cost_per_result: float = 0.0
    output: Path | None = None  # set once rendered (all results of a job share one rendering)
    variation_outputs: dict[int, Path] = field(default_factory=dict)  # results rendered with their own offset
    render_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expired: bool = False
    statusless: bool = False  # finished items leave out `status`, as the service may

    def __post_init__(self) -> None:
        if not self.preparing:
            self.settled.set()

    def set_inputs(self, resolved: dict[str, Path], source: SourceInfo, cost_per_result: float) -> None:
        """The job's media by JSON path (inputs.video, inputs.audio, settings.segments[i].audio)."""
        self.video = resolved["inputs.video"]
        self.source = source
        self.audio = resolved.get("inputs.audio")
        segments = sorted(
            (int(path.split("[", 1)[1].split("]", 1)[0]), file)
            for path, file in resolved.items()
            if path.startswith("settings.segments[")
        )
        self.segment_audio = [file for _, file in segments]
        self.cost_per_result = cost_per_result

    def fail(self, now: float, code: str, message: str, parameter: str | None) -> None:
        """Preparing failed: the task is finished, in error (reported in `errors[]`)."""
        self.failure = Failure(code, message, "errors", parameter)
        self.finish_at = now

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.request.output_format]

    def is_done(self, now: float) -> bool:
        return not self.preparing and now >= self.finish_at

    def expires_at(self) -> float:
        return self.finish_at + self.ttl

    def progress(self, now: float) -> int:
        if self.preparing:
            return 0
        span = self.finish_at - self.accepted_at
        if span <= 0:
            return 99
        return max(0, min(99, int(100 * (now - self.accepted_at) / span)))

    def processing_item(self, now: float) -> dict[str, Any]:
        # The service labels in-progress items with the poll's taskType, not the task's.
        return {
            "taskType": "getResponse",
            "taskUUID": self.task_uuid,
            "status": "processing",
            "progress": self.progress(now),
        }

    def result_item(self, result: Result, outputs_url: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            "taskType": TASK_TYPE,
            "taskUUID": self.task_uuid,
            "status": "success",
            "videoUUID": result.video_uuid,
            "videoURL": f"{outputs_url}/{result.video_uuid}.{self.ext}",
            "seed": result.seed,
            "NSFWContent": result.nsfw,
        }
        if self.statusless:
            del item["status"]
        if self.request.include_cost:
            item["cost"] = self.cost_per_result
        item["emulated"] = True
        item["emulatorNote"] = EMULATOR_NOTE
        return item

    def failure_error(self) -> dict[str, Any]:
        """The failure as an `errors[]` entry (status "error")."""
        assert self.failure is not None
        return error_item(
            self.failure.code,
            self.failure.message,
            parameter=self.failure.parameter,
            task_type=TASK_TYPE,
            task_uuid=self.task_uuid,
            status="error",
        )

    def failure_data_item(self) -> dict[str, Any]:
        """The failure as a data item with a nested error."""
        assert self.failure is not None
        return {
            "taskType": TASK_TYPE,
            "taskUUID": self.task_uuid,
            "status": "error",
            "error": {"code": self.failure.code, "message": self.failure.message},
        }
