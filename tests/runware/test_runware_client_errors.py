"""Every error class is raised for the answer that means it (emulator, or a one-status loopback server)."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import uuid

import pytest
from pydantic import SecretStr

from prefect_lipsync.runware import (
    AuthError,
    ContentFlagged,
    InsufficientCredits,
    JobTimeout,
    LocalMediaError,
    RateLimited,
    RequestRejected,
    RetryPolicy,
    RunwareClient,
    RunwareError,
    ServiceError,
    Sync3Request,
    TaskFailed,
    TaskNotFound,
    TransientTaskError,
)

from .conftest import API_KEY, FAST_POLL, FAST_RETRY, Media, Reply, requests_for, scripted_server

ONE_TRY = RetryPolicy(attempts=1)


def _client(url: str, key: str | SecretStr = API_KEY, **kw: object) -> RunwareClient:
    kw.setdefault("retry", FAST_RETRY)
    return RunwareClient(key, base_url=url, poll=FAST_POLL, **kw)  # type: ignore[arg-type]


async def _inputs(client: RunwareClient, media: Media) -> tuple[str, str]:
    video, audio = await asyncio.gather(client.upload(media.video), client.upload(media.audio))
    assert audio.media_url is not None
    return video.media_uuid, audio.media_url


async def test_wrong_key_is_an_auth_error_that_never_shows_the_key(emulator, media: Media, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-key-7f3e9a1b2c4d"
    with emulator(api_key=API_KEY) as url:
        async with _client(url, key=SecretStr(wrong)) as client:
            with pytest.raises(AuthError) as info:
                await client.upload(media.audio)
            text = repr(client) + str(info.value) + repr(info.value)
            text += "".join(traceback.format_exception(info.value))
        assert url.stats()["http_requests"] == 1  # a 401 is not retried
    assert info.value.status_code == 401 and info.value.code == "invalidApiKey"
    assert wrong not in text and wrong not in caplog.text
    assert API_KEY not in text


async def test_out_of_credits_is_insufficient_credits_and_not_retried(emulator, media: Media) -> None:
    with emulator(credits_usd=0.01, latency=0.1) as url:
        async with _client(url) as client:
            video, audio = await _inputs(client, media)
            before = url.stats()["http_requests"]
            with pytest.raises(InsufficientCredits) as info:
                await client.submit(requests_for(video, audio, 1)[0])
            assert url.stats()["http_requests"] == before + 1
    assert info.value.task_uuid is not None and "credits" in info.value.message


async def test_a_refused_request_is_request_rejected_with_its_parameter(emulator, media: Media) -> None:
    with emulator(latency=0.1) as url:
        async with _client(url) as client:
            _, audio = await _inputs(client, media)
            missing_video = str(uuid.uuid4())  # a media UUID the service never stored
            with pytest.raises(RequestRejected) as info:
                await client.submit(requests_for(missing_video, audio, 1)[0])
    assert info.value.parameter == "inputs.video"
    assert info.value.status_code == 400


async def test_local_files_are_refused_before_any_request(emulator, media: Media) -> None:
    req = Sync3Request.model_validate(
        {"inputs": {"video": media.video.as_uri(), "audio": "https://example.com/a.wav"}}
    )
    with emulator() as url:
        async with _client(url) as client:
            with pytest.raises(LocalMediaError, match=r"face\.mp4.*upload"):
                await client.lipsync_many([req])
        assert url.stats()["http_requests"] == 0


async def test_upload_local_refs_uploads_once_and_keeps_the_task_uuid_across_runs(
    emulator, media: Media
) -> None:
    req = Sync3Request.model_validate(
        {"inputs": {"video": media.video.as_uri(), "audio": media.audio.as_uri()}}
    )
    with emulator(latency=0.1) as url:
        async with _client(url) as first:
            ready = await first.upload_local_refs(req)
            assert ready.local_refs() == [] and ready.task_uuid is not None
            await first.lipsync(ready)
        async with _client(url) as second:  # a re-run: new uploads, new URLs, same task
            again = await second.upload_local_refs(req)
            await second.lipsync(again)
        stats = url.stats()
    assert again.task_uuid == ready.task_uuid
    assert stats["accepted"] == 1 and stats["conflicts"] == 1


async def test_dropped_connections_end_as_service_error_after_bounded_retries(emulator) -> None:
    with emulator(drop_rate=1.0) as url:
        retry = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0.0)
        async with _client(url, retry=retry) as client:
            with pytest.raises(ServiceError) as info:
                await client.upload(b"abc")
        assert url.stats()["http_requests"] == 3
    assert info.value.transient


async def test_rate_limit_is_rate_limited_when_retries_are_spent(emulator) -> None:
    with emulator(rate_limit_per_second=1.0) as url:
        async with _client(url, retry=ONE_TRY) as client:
            outcomes = await asyncio.gather(
                *(client.upload(bytes([i])) for i in range(6)), return_exceptions=True
            )
    limited = [o for o in outcomes if isinstance(o, RateLimited)]
    assert limited and all(o.retry_after is not None and o.retry_after >= 1 for o in limited)


async def test_retry_after_is_honoured_before_retrying() -> None:
    ok = {
        "data": [{"taskType": "mediaStorage", "taskUUID": "x", "mediaUUID": "m-1", "mediaURL": "http://h/m"}]
    }
    replies = [Reply(429, {"errors": [{"code": "rateLimitExceeded"}]}, {"Retry-After": "1"}), Reply(200, ok)]
    with scripted_server(replies) as server:
        retry = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0.0)
        async with _client(server.url + "/v1", retry=retry) as client:
            start = time.monotonic()
            upload = await client.upload(b"hello")
            took = time.monotonic() - start
    assert upload.media_uuid == "m-1" and len(server.seen) == 2
    assert took >= 1.0


async def test_transient_task_failure_is_resubmitted_once_then_raised(emulator, media: Media) -> None:
    with emulator(latency=0.1, task_error_rate=1.0, seed=11) as url:
        async with _client(url, max_task_retries=1) as client:
            video, audio = await _inputs(client, media)
            outcomes = await client.lipsync_many(requests_for(video, audio, 4), return_exceptions=True)
        stats = url.stats()
    assert all(isinstance(o, TransientTaskError) and o.code == "timeoutProvider" for o in outcomes)
    assert stats["accepted"] == 8  # each job: the first task and exactly one (paid) resubmit


async def test_without_task_retries_a_transient_failure_costs_one_task(emulator, media: Media) -> None:
    with emulator(latency=0.1, task_error_rate=1.0, seed=12) as url:
        async with _client(url, max_task_retries=0) as client:
            video, audio = await _inputs(client, media)
            with pytest.raises(TaskFailed):
                await client.lipsync(requests_for(video, audio, 1)[0])
        assert url.stats()["accepted"] == 1


async def test_a_slow_job_raises_job_timeout(emulator, media: Media) -> None:
    with emulator(latency=30) as url:
        async with _client(url) as client:
            video, audio = await _inputs(client, media)
            task_uuid = await client.submit(requests_for(video, audio, 1)[0])
            with pytest.raises(JobTimeout) as info:
                await client.wait(task_uuid, timeout=0.3)
            assert client.in_flight == []
    assert info.value.task_uuid == task_uuid


async def test_unknown_task_is_tolerated_for_the_grace_period_then_not_found(emulator) -> None:
    with emulator() as url:
        async with _client(url) as client:
            client._waiter.policy = FAST_POLL.__class__(**{**FAST_POLL.__dict__, "not_found_grace": 0.4})
            start = time.monotonic()
            with pytest.raises(TaskNotFound):
                await client.wait(str(uuid.uuid4()), timeout=5)
            assert time.monotonic() - start >= 0.4


@pytest.mark.parametrize(
    "answer",
    [
        {
            "errors": [
                {"code": "contentPolicyViolation", "message": "blocked", "taskUUID": "T", "status": "error"}
            ]
        },
        {
            "data": [
                {
                    "taskUUID": "T",
                    "status": "error",
                    "error": {"code": "nsfwContentDetected", "message": "no"},
                }
            ]
        },
    ],
    ids=["errors-array", "nested-error"],
)
async def test_safety_failures_in_either_shape_are_content_flagged(answer: dict) -> None:
    task_uuid = str(uuid.uuid4())
    body = {k: [{**item, "taskUUID": task_uuid} for item in v] for k, v in answer.items()}
    with scripted_server([Reply(200, body)]) as server:
        async with _client(server.url + "/v1") as client:
            with pytest.raises(ContentFlagged) as info:
                await client.wait(task_uuid, timeout=5)
    assert info.value.task_uuid == task_uuid


async def test_runware_errors_share_one_base() -> None:
    for cls in (
        AuthError,
        InsufficientCredits,
        RequestRejected,
        RateLimited,
        ServiceError,
        TaskFailed,
        JobTimeout,
    ):
        assert issubclass(cls, RunwareError)
