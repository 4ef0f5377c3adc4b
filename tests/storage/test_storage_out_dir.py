"""Outputs delivered to object storage: `out_dir` is `s3://bucket/prefix` (Moto's S3 over loopback).

A final key only ever holds a complete, checked file: the runner settles each output in a local
working folder and publishes it, the video last; a failed check lands under `quarantine/`; a publish
that dies leaves no final key, and the re-run delivers without paying again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra import make_tiny_media
from pydantic import SecretStr

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.media.synth import make_tone
from prefect_lipsync.pipeline import JobJournal, JobRunner, RunSettings, plan_run, run_jobs
from prefect_lipsync.runware.client import RunwareClient
from prefect_lipsync.storage import publish, s3_filesystem

pytestmark = pytest.mark.slow


@pytest.fixture
def manifest(tmp_path: Path, cache_dir: Path) -> Path:
    (tmp_path / "media").mkdir()
    media = make_tiny_media(tmp_path / "media")
    german = make_tone(tmp_path / "media" / "de.wav", duration=2.0, frequency=330)  # another job
    path = tmp_path / "manifest.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "promo",
                "video": str(media.video),
                "languages": {"es": {"audio": str(media.dub)}, "de": {"audio": str(german)}},
            }
        )
    )
    return path


async def run(
    manifest: Path, out_dir: str, base_url: str, *, settings: RunSettings | None = None, policy: str = "warn"
) -> list[Any]:
    settings = settings or RunSettings()
    plan = await asyncio.to_thread(plan_run, manifest, settings)
    journal = JobJournal.for_endpoint(base_url)
    async with RunwareClient(
        api_key=SecretStr("k"), base_url=base_url, upload_cache=journal.uploads
    ) as client:
        runner = JobRunner(
            client,
            settings,
            out_dir=f"{out_dir}/{plan.name}",
            journal=journal,
            offline=True,
            policy=policy,  # type: ignore[arg-type]
        )
        return await run_jobs(runner, plan)


def keys(bucket: str) -> set[str]:
    return {key.split("/", 1)[1] for key in s3_filesystem().find(bucket)}


async def test_outputs_reports_and_pictures_land_in_s3_checked_and_nothing_else(
    manifest: Path, bucket: str, cache_dir: Path
) -> None:
    with run_emulator(latency=0.2) as base_url:
        outputs = await run(manifest, f"s3://{bucket}/dubs", str(base_url))
    stored = keys(bucket)
    for output in outputs:
        assert output.error is None, output.error
        video = f"dubs/promo/promo.{output.language}.mp4"
        assert output.output == f"s3://{bucket}/{video}" and video in stored
        assert output.report == f"s3://{bucket}/{video}.report.json"
        report = json.loads(s3_filesystem().cat_file(output.report))
        assert report["output"] == output.output  # the report names the object, not a local working file
        assert output.pictures and all(p.startswith(f"s3://{bucket}/dubs/promo/") for p in output.pictures)
        assert all(p.split("/", 3)[3] in stored for p in output.pictures)
        size = s3_filesystem().info(output.output)["size"]
        assert size > 1000
    assert not [k for k in stored if ".staging" in k or k.endswith(".tmp")]
    # The local working copies of the videos are gone once published; nothing was written to ./dubs.
    assert not list(cache_dir.glob("outbox/**/*.mp4"))
    assert not (Path.cwd() / "s3:").exists()


async def test_a_flagged_output_lands_only_under_quarantine(manifest: Path, bucket: str) -> None:
    with run_emulator(latency=0.2, nsfw_rate=1.0) as base_url:  # the service flags every output
        outputs = await run(manifest, f"s3://{bucket}/dubs", str(base_url), policy="warn")
    stored = keys(bucket)
    for output in outputs:
        assert output.output is None and output.verdict == "fail"
        assert any("content_safety" in c for c in output.failed_checks)
        name = f"promo.{output.language}.mp4"
        assert f"dubs/promo/{name}" not in stored
        assert output.quarantined_to == f"s3://{bucket}/dubs/promo/quarantine/{name}"
        assert {f"dubs/promo/quarantine/{name}", f"dubs/promo/quarantine/{name}.quarantine.json"} <= stored


async def test_a_publish_that_dies_leaves_no_final_key_and_the_rerun_delivers_without_paying(
    manifest: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_publish = publish.publish_file

    def dies_on_the_video(local: Any, dest: str, **kwargs: Any) -> str:
        if dest.endswith(".mp4"):
            raise ConnectionResetError("the link to the bucket dropped")
        return real_publish(local, dest, **kwargs)

    with run_emulator(latency=0.2) as base_url:
        monkeypatch.setattr(publish, "publish_file", dies_on_the_video)
        first = await run(manifest, f"s3://{bucket}/dubs", str(base_url))
        assert all(o.output is None and o.error for o in first)  # nothing claimed as delivered
        assert not [k for k in keys(bucket) if k.endswith(".mp4")]  # no video key at all
        paid = base_url.stats()["accepted"]
        monkeypatch.setattr(publish, "publish_file", real_publish)
        second = await run(manifest, f"s3://{bucket}/dubs", str(base_url))
        assert base_url.stats()["accepted"] == paid == 2  # delivered from what was already paid for
        third = await run(manifest, f"s3://{bucket}/dubs", str(base_url))
        stats = base_url.stats()
    assert all(o.output and o.error is None for o in second)
    assert {o.output for o in third} == {o.output for o in second}  # already delivered: nothing redone
    assert stats["accepted"] == 2


async def test_deliver_to_storage_the_service_puts_the_result_into_the_bucket_and_it_is_checked_there(
    manifest: Path, bucket: str
) -> None:
    settings = RunSettings(deliver_to_storage=True)
    with run_emulator(latency=0.2) as base_url:
        outputs = await run(manifest, f"s3://{bucket}/dubs", str(base_url), settings=settings)
        stats = base_url.stats()
    assert stats["upload_endpoint_puts"] == 2  # the service stored both results itself
    assert stats["downloads"] == 0  # nothing came from the result URL: the runner read the bucket
    stored = keys(bucket)
    for output in outputs:
        assert (
            output.error is None and output.output == f"s3://{bucket}/dubs/promo/promo.{output.language}.mp4"
        )
        assert output.output.split("/", 3)[3] in stored
    assert not [k for k in stored if ".staging" in k]  # promoted to the final key, staging emptied


def test_deliver_to_storage_needs_one_result_per_job() -> None:
    with pytest.raises(ValueError, match="number_results to 1"):
        RunSettings(deliver_to_storage=True, number_results=2)
