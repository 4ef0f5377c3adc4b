"""Slow servers, cut-short downloads, unknown tasks: every attempt ends, nothing partial, a clear error."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import stat
import time
from pathlib import Path

import pytest

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.runware import (
    AttemptDeadline,
    DownloadError,
    DownloadPolicy,
    JobTimeout,
    PollPolicy,
    RetryPolicy,
    RunwareClient,
    ServiceError,
    TaskNotFound,
    TaskNotKnown,
)
from prefect_lipsync.runware.downloads import decoded_length_s

from .conftest import API_KEY, Media, Reply, http_answer, requests_for, scripted_server, trickling_server

TASK = "3f1c2a4e-8b7d-4c1e-9a2b-1234567890ab"
# Attempts of half a second: a trickled answer (a byte per 0.2 s) would take tens of seconds.
SHORT = AttemptDeadline(base=0.5, min_rate=1e9, unknown_size=0.5)
RETRY3 = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0.0, total_time=30)
DOWNLOADS = DownloadPolicy(attempts=2, initial_delay=0.01, max_delay=0.02, attempt=SHORT, fresh_window=0.5)
SUBMIT_ACK = json.dumps({"data": [{"taskType": "videoInference", "taskUUID": TASK}]}).encode()


def client_for(url: str, **kw: object) -> RunwareClient:
    options: dict[str, object] = {
        "retry": RETRY3,
        "attempt_deadline": SHORT,
        "download_policy": DOWNLOADS,
        "poll": PollPolicy(first_delay=0.01, interval=0.05, max_interval=0.1, not_found_grace=0.2),
    }
    options.update(kw)
    return RunwareClient(API_KEY, base_url=url + "/v1", **options)  # type: ignore[arg-type]


def one_request() -> list:  # type: ignore[type-arg]
    return requests_for("https://cdn.example.com/face.mp4", "https://cdn.example.com/voice.wav", 1)


# ---------------------------------------------------------------- a trickling server, every request


async def test_a_trickled_submit_is_cut_per_attempt_retried_then_transient() -> None:
    with trickling_server(http_answer(200, SUBMIT_ACK)) as server:
        async with client_for(server.url) as client:
            started = time.monotonic()
            with pytest.raises(ServiceError) as info:
                await client.submit(one_request()[0])
            elapsed = time.monotonic() - started
    assert info.value.transient and "whole attempt" in str(info.value)
    assert info.value.task_uuid is not None  # the refused task is named
    assert len(server.seen) == RETRY3.attempts and elapsed < 3.0


async def test_a_trickled_submit_stops_at_the_jobs_own_deadline() -> None:
    with trickling_server(http_answer(200, SUBMIT_ACK)) as server:
        retry = RetryPolicy(attempts=50, initial_delay=0.01, max_delay=0.02, jitter=0.0, total_time=60)
        async with client_for(server.url, retry=retry) as client:
            started = time.monotonic()
            with pytest.raises((ServiceError, JobTimeout)):
                await client.lipsync(one_request()[0], timeout=1.2)
            elapsed = time.monotonic() - started
    assert elapsed < 2.0  # the job's 1.2 s bound every attempt and every retry
    assert 2 <= len(server.seen) <= 4


async def test_a_trickled_upload_is_cut_and_retried() -> None:
    answer = http_answer(200, json.dumps({"data": [{"mediaUUID": "m-1"}]}).encode())
    with trickling_server(answer) as server:
        async with client_for(server.url) as client:
            started = time.monotonic()
            with pytest.raises(ServiceError, match="whole attempt"):
                await client.upload(b"some media bytes")
            elapsed = time.monotonic() - started
    assert len(server.seen) == RETRY3.attempts and elapsed < 3.0
    assert all(b'"mediaStorage"' in body for _, _, body in server.seen)


async def test_trickled_polls_are_cut_and_polling_goes_on_until_the_job_deadline() -> None:
    answer = http_answer(200, json.dumps({"data": [{"taskUUID": TASK, "status": "success"}]}).encode())
    with trickling_server(answer) as server:
        async with client_for(server.url, retry=RetryPolicy(attempts=1)) as client:
            started = time.monotonic()
            with pytest.raises(JobTimeout):
                await client.wait(TASK, timeout=1.6)
            elapsed = time.monotonic() - started
    polls = [body for _, _, body in server.seen if b"getResponse" in body]
    assert len(polls) >= 2  # each poll was cut at 0.5 s, and the next one went out
    assert elapsed < 2.5


@pytest.mark.parametrize("head_at_once", [False, True])
async def test_a_trickled_download_is_cut_retried_and_leaves_nothing(
    tmp_path: Path, head_at_once: bool
) -> None:
    answer = http_answer(200, b"v" * 200, ctype="video/mp4")
    with trickling_server(answer, head_at_once=head_at_once) as server:
        async with client_for(server.url) as client:
            started = time.monotonic()
            with pytest.raises(DownloadError, match="whole attempt"):
                await client.download(server.url + "/out.mp4", tmp_path / "out.mp4")
            elapsed = time.monotonic() - started
    assert len(server.seen) == DOWNLOADS.attempts and elapsed < 3.0
    assert list(tmp_path.iterdir()) == []


async def test_a_quick_answer_within_the_deadline_goes_through(tmp_path: Path) -> None:
    # The same server, fast enough: the deadline does not cut answers that keep up.
    with trickling_server(http_answer(200, SUBMIT_ACK), delay=0.001) as server:
        async with client_for(server.url, attempt_deadline=AttemptDeadline(base=5.0)) as client:
            uuid = await client.submit(one_request()[0])
            assert client.was_accepted(uuid) is True
    body = b"v" * 300
    with trickling_server(
        http_answer(200, body, ctype="video/mp4"), delay=0.001, head_at_once=True
    ) as server:
        policy = DownloadPolicy(attempts=1, attempt=AttemptDeadline(base=5.0))
        async with client_for(server.url, download_policy=policy) as client:
            out = await client.download(server.url + "/out.mp4", tmp_path / "out.mp4")
    assert out.read_bytes() == body


def test_an_attempts_deadline_grows_with_its_size() -> None:
    deadline = AttemptDeadline(base=10.0, min_rate=1000.0, unknown_size=99.0)
    assert deadline.for_size(0) == 10.0 and deadline.for_size(5000) == 15.0
    assert deadline.for_size(None) == 99.0


# ---------------------------------------------------------------- downloads without a Content-Length


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, media: Media) -> dict[str, bytes]:
    """A 1 s result as served (index last), and with its index first (header says 1 s when cut)."""
    root = tmp_path_factory.mktemp("results")
    fast = root / "fast.mp4"
    run_ffmpeg(["-y", "-i", str(media.video), "-c", "copy", "-movflags", "+faststart", str(fast)], timeout=60)
    return {"plain": media.video.read_bytes(), "faststart": fast.read_bytes()}


async def test_without_content_length_a_full_result_that_decodes_to_its_length_is_kept(
    tmp_path: Path, videos: dict[str, bytes]
) -> None:
    data = videos["plain"]
    with trickling_server(http_answer(200, data, content_length=False, ctype="video/mp4"), delay=0) as server:
        async with client_for(server.url) as client:
            out = await client.download(server.url + "/r.mp4", tmp_path / "r.mp4", expected_duration_s=1.0)
    assert out.read_bytes() == data
    assert abs(decoded_length_s(out) - 1.0) < 0.1
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # as any new file, not 0600


@pytest.mark.parametrize("kind", ["plain", "faststart"])
async def test_without_content_length_a_cut_short_result_is_an_error_and_not_kept(
    tmp_path: Path, videos: dict[str, bytes], kind: str
) -> None:
    data = videos[kind][: len(videos[kind]) // 3]  # the server closes a third of the way
    target = tmp_path / "r.mp4"
    with trickling_server(http_answer(200, data, content_length=False, ctype="video/mp4"), delay=0) as server:
        async with client_for(server.url) as client:
            with pytest.raises(DownloadError, match=r"does not decode|decodes to .* cut short") as info:
                await client.download(server.url + "/r.mp4", target, expected_duration_s=1.0)
    assert "no Content-Length" in str(info.value)
    assert len(server.seen) == DOWNLOADS.attempts  # a cut is worth another try
    assert list(tmp_path.iterdir()) == []


async def test_without_content_length_and_without_an_expected_length_nothing_is_kept(tmp_path: Path) -> None:
    with trickling_server(http_answer(200, b"v" * 100, content_length=False), delay=0) as server:
        async with client_for(server.url) as client:
            with pytest.raises(DownloadError, match="expected_duration_s"):
                await client.download(server.url + "/r.mp4", tmp_path / "r.mp4")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a task the service does not know


def not_found(task: str) -> Reply:
    return Reply(200, {"errors": [{"code": "taskNotFound", "taskUUID": task, "message": "Task not found"}]})


async def test_an_unknown_task_says_so_and_how_to_pay_again() -> None:
    with scripted_server([not_found(TASK)]) as server:
        async with client_for(server.url) as client:
            with pytest.raises(TaskNotKnown) as info:
                await client.wait(TASK, timeout=10)
            assert client.was_accepted(TASK) is None  # this client never submitted it
    err = info.value
    assert isinstance(err, TaskNotFound) and err.task_uuid == TASK and err.accepted is None
    assert "no record" in str(err) and "rerun_nonce" in str(err) and "purged" in str(err)
    again = pickle.loads(pickle.dumps(err))  # Prefect ships exceptions between processes
    assert isinstance(again, TaskNotKnown) and again.task_uuid == TASK


async def test_an_unknown_task_this_client_submitted_is_known_to_have_been_accepted() -> None:
    request = one_request()[0]
    async with client_for("http://127.0.0.1:9") as probe:
        uuid = probe.prepare(request).task_uuid
    ack = Reply(200, {"data": [{"taskType": "videoInference", "taskUUID": uuid}]})
    with scripted_server([ack, not_found(uuid)]) as server:
        async with client_for(server.url) as client:
            with pytest.raises(TaskNotKnown) as info:
                await client.lipsync(request, timeout=10)
            assert client.was_accepted(uuid) is True
    assert info.value.accepted is True and info.value.task_uuid == uuid


async def test_not_found_within_the_grace_period_is_still_waited_for() -> None:
    done = {"data": [{"taskType": "videoInference", "taskUUID": TASK, "status": "success",
                      "videoUUID": "v1", "videoURL": "https://cdn.example.com/v1.mp4"}]}  # fmt: skip
    with scripted_server([not_found(TASK), Reply(200, done)]) as server:
        async with client_for(server.url, poll=PollPolicy(first_delay=0.01, interval=0.05)) as client:
            [result] = await asyncio.wait_for(client.wait(TASK, timeout=10), 10)
    assert result.video_uuid == "v1"


async def test_a_refused_submit_is_known_never_to_have_been_accepted() -> None:
    refusal = Reply(400, {"errors": [{"code": "invalidSyncMode", "message": "bad", "parameter": "settings"}]})
    with scripted_server([refusal]) as server:
        async with client_for(server.url) as client:
            request = one_request()[0]
            uuid = client.prepare(request).task_uuid
            with pytest.raises(Exception, match="bad"):
                await client.submit(request)
            assert client.was_accepted(uuid) is False
            assert client.was_accepted(TASK) is None


def test_a_cut_result_whose_header_claims_the_full_length_is_measured_by_its_packets(
    tmp_path: Path, videos: dict[str, bytes]
) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(videos["faststart"][: len(videos["faststart"]) // 3])
    header = json.loads(
        run_ffmpeg_probe_format(cut)  # the index comes first, so the header still says 1 s
    )["format"]["duration"]
    assert abs(float(header) - 1.0) < 0.05
    assert decoded_length_s(cut) < 0.7


def run_ffmpeg_probe_format(path: Path) -> str:
    from prefect_lipsync.media.ffmpeg_runner import run_process

    done = run_process(
        ["ffprobe", "-v", "quiet", "-show_entries", "format=duration", "-of", "json", str(path)]
    )
    return done.stdout.decode()
