"""Reports (artifacts) are written in the background: a slow or busy Prefect API delays a report, never
the job or manifest that made it; the run waits for them at its end, and they belong to the run (task
run) that made them. Read back from the test server's API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from prefect import flow, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_API_URL

from prefect_lipsync.tasks import report as report_module
from prefect_lipsync.tasks.report import create_progress
from prefect_lipsync.tasks.resilience import best_effort, reports_in_background


def read_artifacts(key: str) -> list[dict[str, Any]]:
    body = {"limit": 50, "offset": 0, "sort": "CREATED_DESC", "artifacts": {"key": {"any_": [key]}}}
    answer = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    answer.raise_for_status()
    return list(answer.json())


@task(cache_policy=NO_CACHE)
async def job_that_reports(key: str, delay_s: float) -> float:
    """Publishes a report that takes `delay_s` to write; returns how long the job waited for it."""

    async def slow_artifact() -> None:
        await asyncio.sleep(delay_s)
        await acreate_markdown_artifact(markdown="# report", key=key)

    began = time.perf_counter()
    await best_effort(slow_artifact, "a report")
    return time.perf_counter() - began


@flow
async def run_with_background_reports(key: str, delay_s: float) -> tuple[float, float, float]:
    began = time.perf_counter()
    async with reports_in_background():
        waited = await job_that_reports(key, delay_s)
        body_s = time.perf_counter() - began
    return waited, body_s, time.perf_counter() - began


async def test_a_slow_report_does_not_hold_the_job_and_the_run_waits_for_it_at_its_end() -> None:
    waited, body_s, whole_s = await run_with_background_reports("lipsync-bg-slow", 1.5)
    assert waited < 0.5  # the job went on at once
    assert body_s < 1.5 <= whole_s  # the run's end waited for the report
    (artifact,) = read_artifacts("lipsync-bg-slow")
    assert artifact["task_run_id"] is not None  # it belongs to the job's task run, written after it ended


@flow
async def nested_scopes(key: str) -> tuple[bool, bool]:
    async def slow_artifact() -> None:
        await asyncio.sleep(0.5)
        await acreate_markdown_artifact(markdown="# report", key=key)

    async with reports_in_background():
        async with reports_in_background():  # a manifest's scope inside a batch's: the batch waits
            await best_effort(slow_artifact, "a report")
        written_when_inner_ended = bool(read_artifacts(key))
    return written_when_inner_ended, bool(read_artifacts(key))


async def test_an_inner_scope_leaves_its_reports_to_the_outer_one() -> None:
    inner, outer = await nested_scopes("lipsync-bg-nested")
    assert not inner and outer


@flow
async def report_that_never_ends() -> float:
    began = time.perf_counter()
    async with reports_in_background(timeout_s=0.5):
        await best_effort(lambda: asyncio.sleep(3600), "a stuck report")
    return time.perf_counter() - began


async def test_a_report_still_stuck_at_the_end_is_given_up_with_a_warning(
    prefect_caplog: pytest.LogCaptureFixture,
) -> None:
    took = await report_that_never_ends()
    assert took < 5
    assert "1 reports were still being written" in prefect_caplog.text


@flow
async def racing_progress_writes(key: str) -> None:
    progress = await create_progress(key, total=3)
    progress.every_s = 0  # every step is due for a write
    async with reports_in_background():
        for i in range(3):
            if progress.step(f"step {i + 1}"):
                await best_effort(progress.flush, "the progress")


async def test_progress_writes_in_the_background_land_in_order_the_last_one_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_update = report_module.aupdate_progress_artifact
    sent: list[float] = []

    async def first_one_slow(artifact_id: Any, **kwargs: Any) -> Any:
        if not sent:
            await asyncio.sleep(1.0)  # the first write meets a busy API
        sent.append(kwargs["progress"])
        return await real_update(artifact_id, **kwargs)

    monkeypatch.setattr(report_module, "aupdate_progress_artifact", first_one_slow)
    await racing_progress_writes("racing")
    assert sent == sorted(sent) and sent[-1] == 100.0
    (latest, *_) = read_artifacts("lipsync-progress-racing")
    assert latest["data"] == 100.0 and latest["description"].startswith("3/3 jobs done")


@flow
async def report_that_breaks() -> bool:
    async def broken() -> None:
        raise OSError("the picture is gone")

    async with reports_in_background():
        await best_effort(broken, "a broken report")
    return True


async def test_a_report_that_fails_in_the_background_is_said_in_the_log_and_the_run_goes_on(
    prefect_caplog: pytest.LogCaptureFixture,
) -> None:
    assert await report_that_breaks()
    assert "Could not publish a broken report (OSError: the picture is gone)" in prefect_caplog.text
