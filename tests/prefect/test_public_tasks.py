"""The public tasks as Prefect's integrations shape theirs: a sync task and an `a`-prefixed async twin,
a name and a description, a Google docstring with an Example inside a @flow; a value in a sync flow,
awaited in an async flow; bad input refused with its place before anything is submitted."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest
from prefect import Task, flow

import prefect_lipsync.tasks as public
from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.tasks import (
    LipsyncJobResult,
    ManifestError,
    MediaInfo,
    PreflightFailed,
    SubmittedJob,
    aprobe_media,
    asubmit_lipsync_job,
    await_for_lipsync_jobs,
    build_segments,
    probe_media,
)


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prefect_lipsync.media.synth import make_talking_card

    return make_talking_card(tmp_path_factory.mktemp("media") / "source.mp4", duration=2.0, size=(160, 90))


PAIRS = [
    ("probe_media", "aprobe_media"),
    ("build_segments", "abuild_segments"),
    ("submit_lipsync_job", "asubmit_lipsync_job"),
    ("wait_for_lipsync_jobs", "await_for_lipsync_jobs"),
    ("download_lipsync_output", "adownload_lipsync_output"),
    ("run_quality_checks", "arun_quality_checks"),
]


@pytest.mark.parametrize(("sync_name", "async_name"), PAIRS)
def test_each_step_is_a_named_task_with_an_async_twin_and_a_documented_example(
    sync_name: str, async_name: str
) -> None:
    sync_task, async_task = getattr(public, sync_name), getattr(public, async_name)
    assert isinstance(sync_task, Task) and isinstance(async_task, Task)
    assert sync_task.name == async_task.name and sync_task.description
    assert not sync_task.isasync and async_task.isasync
    # The twins take the same arguments.
    assert (
        inspect.signature(sync_task.fn).parameters.keys()
        == inspect.signature(async_task.fn).parameters.keys()
    )
    for task in (sync_task, async_task):
        doc = inspect.getdoc(task.fn) or ""
        for section in ("Args:", "Returns:", "Example:", "@flow"):
            assert section in doc, (task.name, section)


def test_a_sync_flow_gets_values_and_an_async_flow_awaits_the_twins(tmp_path: Path, tiny_video: Path) -> None:
    @flow
    def sync_flow() -> MediaInfo:
        return probe_media(str(tiny_video))

    @flow
    async def async_flow() -> MediaInfo:
        pending = aprobe_media(str(tiny_video))
        assert inspect.isawaitable(pending)
        return await pending

    from_sync = sync_flow()
    from_async = asyncio.run(async_flow())
    assert isinstance(from_sync, MediaInfo) and from_sync == from_async
    assert abs(from_sync.duration - 2.0) < 0.1


def test_a_bad_manifest_mapping_names_its_field_and_nothing_is_submitted(
    tmp_path: Path, tiny_video: Path
) -> None:
    document = {
        "version": 1,
        "video": str(tiny_video),
        "languages": {"es": {"lines": [{"id": "a", "start": 1.5, "end": 0.5, "audio": "missing.wav"}]}},
    }

    @flow
    def plan() -> int:
        return len(build_segments(document, base_dir=str(tmp_path)))

    with pytest.raises(ManifestError) as caught:
        plan()
    text = str(caught.value)
    assert "<mapping>" in text and "languages.es.lines[0]" in text, text


def test_a_doomed_wire_request_is_refused_locally_and_never_reaches_the_service(tiny_video: Path) -> None:
    # A segment past the video's end: pre-flight refuses it; the emulator sees no submit.
    request = {
        "taskType": "videoInference",
        "model": "sync:3@0",
        "inputs": {"video": tiny_video.as_uri()},
        "settings": {"segments": [{"startTime": 5.0, "endTime": 6.0, "audio": tiny_video.as_uri()}]},
    }
    with run_emulator(latency=0.1) as base_url:
        from prefect_lipsync.blocks import RunwareCredentials

        credentials = RunwareCredentials(api_key="k", base_url=str(base_url))

        @flow
        async def submit() -> SubmittedJob:
            return await asubmit_lipsync_job(request, credentials)

        with pytest.raises(PreflightFailed, match="nothing was uploaded or submitted"):
            asyncio.run(submit())
        assert base_url.stats()["accepted"] == 0


def test_many_jobs_are_waited_for_in_one_task_run_and_come_back_in_order(tiny_video: Path) -> None:
    from prefect_lipsync.blocks import RunwareCredentials

    def request(seconds: float) -> dict[str, object]:
        return {
            "taskType": "videoInference",
            "model": "sync:3@0",
            "inputs": {"video": tiny_video.as_uri()},
            "settings": {"segments": [{"startTime": 0.0, "endTime": seconds, "audio": tiny_video.as_uri()}]},
        }

    with run_emulator(latency=0.5) as base_url:
        credentials = RunwareCredentials(api_key="k", base_url=str(base_url))

        @flow
        async def run() -> tuple[list[SubmittedJob], list[LipsyncJobResult]]:
            submitted = [await asubmit_lipsync_job(request(s), credentials) for s in (1.0, 1.5, 0.5)]
            return submitted, await await_for_lipsync_jobs(submitted, credentials, timeout_s=120)

        submitted, done = asyncio.run(run())
        stats = base_url.stats()
    assert [r.task_uuid for r in done] == [s.task_uuid for s in submitted]
    assert all(r.ok and r.results[0].video_url for r in done)
    assert stats["accepted"] == 3
    # One wait for three jobs: a handful of batched polls, not three pollers.
    assert stats["requests"].get("getResponse", 0) <= 3 * 4, stats["requests"]
