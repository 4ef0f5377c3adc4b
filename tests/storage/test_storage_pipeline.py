"""A manifest whose media sit in S3, run by the job runner with its state (journal, uploads) in S3:
a manifest resumed on another worker (another local cache) uploads nothing again and pays nothing again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from infra import make_tiny_media
from pydantic import SecretStr

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.pipeline import JobJournal, JobRunner, RunSettings, Step, plan_run, run_jobs
from prefect_lipsync.runware.client import RunwareClient
from prefect_lipsync.storage import s3_filesystem

pytestmark = pytest.mark.slow
T = TypeVar("T")


class Crash(BaseException):
    """The worker dies at this step."""


async def run_as_worker(manifest: Path, out: Path, base_url: str, hook: Any = None) -> list[Any]:
    settings = RunSettings()
    plan = await asyncio.to_thread(plan_run, manifest, settings)
    journal = JobJournal.for_endpoint(base_url)  # PREFECT_LIPSYNC_STATE_URL: the shared s3:// store
    async with RunwareClient(
        api_key=SecretStr("k"), base_url=base_url, upload_cache=journal.uploads
    ) as client:
        runner = JobRunner(
            client, settings, out_dir=out / plan.name, journal=journal, offline=True, policy="warn", hook=hook
        )
        return await run_jobs(runner, plan)


async def test_s3_media_are_presigned_checked_and_a_resume_on_another_worker_repeats_nothing(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "media").mkdir()
    media = make_tiny_media(tmp_path / "media")
    fs = s3_filesystem()
    fs.put(str(media.video), f"{bucket}/in/promo.mp4")
    fs.put(str(media.dub), f"{bucket}/in/es.wav")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "s3promo",
                "video": f"s3://{bucket}/in/promo.mp4",
                "languages": {"es": {"audio": f"s3://{bucket}/in/es.wav"}, "de": {"audio": str(media.dub)}},
            }
        )
    )
    monkeypatch.setenv("PREFECT_LIPSYNC_STATE_URL", f"s3://{bucket}/state")

    async def die_at_download(step: Step, work: Callable[[], Awaitable[T]]) -> T:
        if step.name == "download":
            raise Crash
        return await work()

    with run_emulator(latency=0.3) as base_url:
        monkeypatch.setenv("PREFECT_LIPSYNC_CACHE_DIR", str(tmp_path / "worker-a"))
        monkeypatch.setenv("PREFECT_LIPSYNC_MEDIA_CACHE_DIR", str(tmp_path / "worker-a" / "media"))
        with pytest.raises(Crash):
            await run_as_worker(manifest, tmp_path / "out-a", str(base_url), die_at_download)
        before = base_url.stats()
        # Another worker: nothing of worker A's local disk, only the shared state in S3.
        monkeypatch.setenv("PREFECT_LIPSYNC_CACHE_DIR", str(tmp_path / "worker-b"))
        monkeypatch.setenv("PREFECT_LIPSYNC_MEDIA_CACHE_DIR", str(tmp_path / "worker-b" / "media"))
        outputs = await run_as_worker(manifest, tmp_path / "out-b", str(base_url))
        after = base_url.stats()
    assert all(o.error is None and o.output and Path(o.output).exists() for o in outputs), outputs
    assert before["accepted"] == after["accepted"] == 2  # each job paid once, across both workers
    assert before["uploads"] == after["uploads"] == 1  # only the local dub was uploaded, once
    assert fs.ls(f"{bucket}/state/journal")  # the journal lives in the shared store
    for output in outputs:
        assert "X-Amz-Signature" not in Path(output.report).read_text()  # presigned URLs are credentials
