"""The job runner on its own (no Prefect): the real emulator over loopback, real ffmpeg, a real journal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.media.probe import probe
from prefect_lipsync.pipeline import JobJournal, JobRunner, RunSettings, Step, plan_run, run_jobs
from prefect_lipsync.quality import QualityThresholds
from prefect_lipsync.runware.client import RunwareClient
from prefect_lipsync.runware.waiting import PollPolicy

pytestmark = pytest.mark.slow
T = TypeVar("T")

FAILING = RunSettings(quality=QualityThresholds(outside_face_min_ssim=0.9999))  # every output fails


class Crash(BaseException):
    """Stands for the process dying at a step (BaseException: no `except Exception` swallows it)."""


async def run_once(
    manifest: Path,
    out: Path,
    base_url: str,
    *,
    settings: RunSettings | None = None,
    hook: Any = None,
    policy: str = "fail",
    poll: PollPolicy | None = None,
) -> list[Any]:
    settings = settings or RunSettings()
    plan = await asyncio.to_thread(plan_run, manifest, settings)
    journal = JobJournal.for_endpoint(base_url)
    async with RunwareClient(
        api_key=SecretStr("k"), base_url=base_url, upload_cache=journal.uploads, poll=poll
    ) as client:
        runner = JobRunner(
            client,
            settings,
            out_dir=out / plan.name,
            journal=journal,
            offline=True,
            policy=policy,  # type: ignore[arg-type]
            hook=hook,
        )
        return await run_jobs(runner, plan)


async def test_a_job_is_delivered_checked_with_its_report_and_pictures_and_nothing_left_in_staging(
    manifest: Path, tmp_path: Path, cache_dir: Path
) -> None:
    steps: list[str] = []

    async def record(step: Step, work: Callable[[], Awaitable[T]]) -> T:
        steps.append(step.name)
        return await work()

    with run_emulator(latency=0.2) as base_url:
        (output,) = await run_once(manifest, tmp_path / "out", str(base_url), hook=record)
        counters = base_url.stats()
    assert output.error is None and output.verdict in {"pass", "warn"}, output
    assert steps == ["submit", "wait", "download", "check", "deliver"]
    delivered = Path(output.output)
    assert delivered == tmp_path / "out" / "runner" / "runner.es.mp4"
    assert probe(delivered, cache=None).has_audio
    report = json.loads(Path(output.report).read_text())
    assert Path(output.report).parent == delivered.parent and report["output"] == str(delivered)
    assert all(Path(p).parent == delivered.parent and Path(p).exists() for p in output.pictures)
    assert not list((tmp_path / "out" / "runner" / ".staging").iterdir())
    assert counters["accepted"] == 1
    assert output.cost_usd is None and output.estimated_cost_usd  # offline: nothing paid, an estimate shown


async def test_under_faults_and_a_transient_task_failure_each_task_is_accepted_once(
    manifest: Path, tmp_path: Path, cache_dir: Path
) -> None:
    with run_emulator(
        latency=0.3, seed=3, http_error_rate=0.2, drop_rate=0.05, lose_submit_rate=0.3, task_error_rate=0.5
    ) as base_url:
        settings = RunSettings(max_task_retries=5)
        (output,) = await run_once(manifest, tmp_path / "out", str(base_url), settings=settings)
        counters = base_url.stats()
    assert output.error is None, output.error
    # One task, plus one resubmit (a new paid task) per transient failure, each accepted exactly once.
    assert counters["accepted"] == counters["distinct_task_uuids"] == 1 + counters["failed"]
    # The journal wrote down every paid task the moment it was accepted.
    journal = JobJournal.for_endpoint(str(base_url))
    (record,) = (journal.load(p.stem) for p in cache_dir.rglob("jobs/*.json"))
    assert sorted(record.accepted) == sorted({record.task_uuid, output.task_uuid})
    assert len(record.accepted) == counters["accepted"]


@pytest.mark.parametrize("crash_at", ["download", "check", "deliver"])
async def test_a_crash_after_the_submit_resumes_without_uploading_or_paying_again(
    manifest: Path, tmp_path: Path, cache_dir: Path, crash_at: str
) -> None:
    async def crash(step: Step, work: Callable[[], Awaitable[T]]) -> T:
        if step.name == crash_at:
            raise Crash(step.name)
        return await work()

    with run_emulator(latency=0.2) as base_url:
        with pytest.raises(Crash):
            await run_once(manifest, tmp_path / "out", str(base_url), hook=crash)
        delivery = tmp_path / "out" / "runner" / "runner.es.mp4"
        assert not delivery.exists()  # nothing half-done at the delivery name
        before = base_url.stats()
        (output,) = await run_once(manifest, tmp_path / "out", str(base_url))
        after = base_url.stats()
    assert output.error is None and Path(output.output) == delivery and delivery.exists()
    assert after["accepted"] == before["accepted"] == 1
    assert after["uploads"] == before["uploads"]


async def test_a_failed_check_under_fail_leaves_nothing_at_the_delivery_name(
    manifest: Path, tmp_path: Path, cache_dir: Path
) -> None:
    with run_emulator(latency=0.2) as base_url:
        (output,) = await run_once(manifest, tmp_path / "out", str(base_url), settings=FAILING)
    assert output.verdict == "fail" and output.output is None and not output.held
    assert not (tmp_path / "out" / "runner" / "runner.es.mp4").exists()
    quarantined = Path(output.quarantined_to)
    assert quarantined.parent.name == "quarantine" and quarantined.exists()
    assert Path(str(quarantined) + ".quarantine.json").exists()
    assert any("outside_face" in f or "ssim" in f for f in output.failed_checks), output.failed_checks


async def test_a_failed_check_under_ask_is_held_in_quarantine_and_under_warn_delivered(
    manifest: Path, tmp_path: Path, cache_dir: Path
) -> None:
    with run_emulator(latency=0.2) as base_url:
        (held,) = await run_once(manifest, tmp_path / "ask", str(base_url), settings=FAILING, policy="ask")
        (warned,) = await run_once(
            manifest, tmp_path / "warn", str(base_url), settings=FAILING, policy="warn"
        )
    assert held.held and held.output is None and Path(held.quarantined_to).exists()
    assert warned.verdict == "fail" and warned.output and Path(warned.output).exists()


async def test_a_rerun_whose_accepted_task_the_service_forgot_says_so_and_pays_nothing(
    manifest: Path, tmp_path: Path, cache_dir: Path
) -> None:
    port_holder: dict[str, int] = {}
    with run_emulator(latency=0.2) as base_url:
        port_holder["port"] = int(str(base_url).split(":")[2].split("/")[0])

        async def crash(step: Step, work: Callable[[], Awaitable[T]]) -> T:
            if step.name == "download":
                raise Crash(step.name)
            return await work()

        with pytest.raises(Crash):
            await run_once(manifest, tmp_path / "out", str(base_url), hook=crash)
    # The endpoint was reset: a new emulator on the same address knows no task.
    with run_emulator(latency=0.2, port=port_holder["port"]) as base_url:
        (output,) = await run_once(
            manifest, tmp_path / "out", str(base_url), poll=PollPolicy(not_found_grace=0.5)
        )
        counters = base_url.stats()
    assert counters["accepted"] == 0  # never paid silently
    assert output.error and "rerun_nonce" in output.error and output.task_uuid in output.error


async def test_a_run_writes_nothing_beside_its_inputs_audio_work_goes_to_the_cache(
    manifest: Path, tmp_path: Path, cache_dir: Path
) -> None:
    # Line 1 has no gap to grow into: its audio is sped up, an operation rendered before upload.
    manifest.write_text(
        manifest.read_text().replace("end: 2.9", "end: 2.55").replace("start: 3.4", "start: 2.6")
    )
    inbox = manifest.parent
    before = sorted(p.relative_to(inbox) for p in inbox.rglob("*"))
    with run_emulator(latency=0.2) as base_url:
        (output,) = await run_once(manifest, tmp_path / "out", str(base_url), policy="warn")
    assert output.error is None and output.output
    assert any(w in str(output.warnings) for w in ("tempo", "sped up", "truncated")), output.warnings
    assert sorted(p.relative_to(inbox) for p in inbox.rglob("*")) == before  # a read-only share would do
    assert list(cache_dir.rglob("audio-ops/*.wav"))  # the rendered audio lives in the cache folder
