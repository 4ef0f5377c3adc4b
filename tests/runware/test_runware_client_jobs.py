"""submit / wait / lipsync_many against the emulator over loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from prefect_lipsync.runware import (
    RunwareClient,
    SyncRunwareClient,
    WebhookReceiver,
    derive_task_uuid,
    serve_webhooks,
)

from .conftest import API_KEY, FAST_POLL, FAST_RETRY, Media, requests_for


async def _inputs(client: RunwareClient, media: Media) -> tuple[str, str]:
    video, audio = await asyncio.gather(client.upload(media.video), client.upload(media.audio))
    assert audio.media_url is not None
    return video.media_uuid, audio.media_url


def _client(url: str, **kw: object) -> RunwareClient:
    return RunwareClient(API_KEY, base_url=url, poll=FAST_POLL, retry=FAST_RETRY, **kw)  # type: ignore[arg-type]


async def test_lipsync_many_returns_each_jobs_results_in_request_order(emulator, media: Media) -> None:
    with emulator(latency=0.2, seed=1) as url:
        async with _client(url) as client:
            video, audio = await _inputs(client, media)
            reqs = requests_for(video, audio, 12)
            results = await client.lipsync_many(reqs)
        stats = url.stats()
    assert [r[0].task_uuid for r in results] == [derive_task_uuid(q) for q in reqs]
    assert all(len(r) == 1 and r[0].is_success and r[0].video_url for r in results)
    assert stats["accepted"] == 12
    # 12 tasks in one submit POST, all polled together: far fewer POSTs than tasks x polls.
    assert stats["requests"]["videoInference"] == 12
    assert stats["http_requests"] <= 2 + 1 + 12


@pytest.mark.slow
async def test_hundred_jobs_under_faults_make_exactly_one_task_each(emulator, media: Media) -> None:
    with emulator(latency=0.5, seed=7, http_error_rate=0.2, drop_rate=0.1, lose_submit_rate=0.3) as url:
        async with _client(url, submit_batch_size=25) as client:
            video, audio = await _inputs(client, media)
            results = await client.lipsync_many(requests_for(video, audio, 100), timeout=60)
        stats = url.stats()
    assert len(results) == 100 and all(r[0].is_success for r in results)
    assert stats["accepted"] == 100
    assert stats["distinct_task_uuids"] == 100
    assert stats["faults"].get("http_errors", 0) > 0 and stats["faults"].get("drops", 0) > 0
    assert stats["faults"].get("lost_submits", 0) > 0 and stats["conflicts"] > 0


async def test_rerun_of_the_same_requests_pays_for_one_task_each(emulator, media: Media) -> None:
    with emulator(latency=0.2, seed=2) as url:
        async with _client(url) as first:
            video, audio = await _inputs(first, media)
            reqs = requests_for(video, audio, 5)
            one = await first.lipsync_many(reqs)
        async with _client(url) as second:  # a new process after a crash, say
            two = await second.lipsync_many(reqs)
        stats = url.stats()
    assert stats["accepted"] == 5 and stats["conflicts"] == 5
    assert [r[0].video_uuid for r in one] == [r[0].video_uuid for r in two]


async def test_nonce_makes_a_deliberate_rerun_a_new_task(emulator, media: Media) -> None:
    with emulator(latency=0.1, seed=2) as url:
        async with _client(url) as client:
            video, audio = await _inputs(client, media)
            req = requests_for(video, audio, 1)[0]
            a = await client.submit(req)
            b = await client.submit(req, nonce="take-2")
        assert a != b and url.stats()["accepted"] == 2


async def test_number_results_three_gives_three_distinct_results(emulator, media: Media) -> None:
    with emulator(latency=0.2, seed=3) as url:
        async with _client(url) as client:
            video, audio = await _inputs(client, media)
            [results] = await client.lipsync_many(requests_for(video, audio, 1, numberResults=3))
    assert len(results) == 3
    assert len({r.video_uuid for r in results}) == 3


async def test_many_concurrent_waiters_share_one_poller(emulator, media: Media) -> None:
    with emulator(latency=0.3, seed=4) as url:
        async with _client(url) as client:
            video, audio = await _inputs(client, media)
            uuids = await client.submit_many(requests_for(video, audio, 30))
            before = url.stats()["http_requests"]
            # 30 independent coroutines, as 30 Prefect task runs would be.
            results = await asyncio.gather(*(client.wait(u, timeout=20) for u in uuids))
            polls = url.stats()["http_requests"] - before
    assert [r[0].task_uuid for r in results] == uuids
    # One POST per tick for all 30, not 30 per tick.
    assert polls <= 12, polls


async def test_waiter_wakes_within_a_tick_of_the_job_finishing(emulator, media: Media) -> None:
    latency = 1.0
    with emulator(latency=latency, seed=5) as url:
        async with _client(url) as client:
            video, audio = await _inputs(client, media)
            req = requests_for(video, audio, 1)[0]
            start = time.monotonic()
            await client.lipsync(req)
            took = time.monotonic() - start
    # The cadence caps at 0.25 s here: done within one tick (plus loopback slack).
    assert latency <= took < latency + 0.25 + 0.35, took


async def test_progress_callback_sees_processing_then_success(emulator, media: Media) -> None:
    seen: list[tuple[str, str, float | None]] = []
    with emulator(latency=0.4, seed=6) as url:
        async with _client(url, progress=lambda u, s, p: seen.append((u, s, p))) as client:
            video, audio = await _inputs(client, media)
            [res] = await client.lipsync_many(requests_for(video, audio, 1))
    statuses = [s for u, s, _ in seen if u == res[0].task_uuid]
    assert statuses[0] == "processing" and statuses[-1] == "success"


@pytest.mark.parametrize("shape", ["flat", "data"])
async def test_webhook_mode_completes_without_polling(emulator, media: Media, shape: str) -> None:
    receiver = WebhookReceiver()
    with emulator(latency=0.2, seed=8, webhook_shape=shape) as url, serve_webhooks(receiver):
        async with _client(url, webhook=receiver) as client:
            video, audio = await _inputs(client, media)
            results = await client.lipsync_many(requests_for(video, audio, 6, numberResults=2), timeout=30)
        stats = url.stats()
    assert all(len(r) == 2 for r in results)
    assert stats["requests"].get("getResponse", 0) == 0
    assert receiver.received == 12 and receiver.refused == 0


async def test_batched_polls_fall_back_to_one_per_request_when_refused(emulator, media: Media) -> None:
    with emulator(latency=0.2, seed=9, reject_batch_polls=True) as url:
        async with _client(url) as client:
            video, audio = await _inputs(client, media)
            results = await client.lipsync_many(requests_for(video, audio, 4))
            assert client._waiter.batch_polls is False
        stats = url.stats()
    assert len(results) == 4 and stats["accepted"] == 4


def test_sync_facade_runs_jobs_from_plain_code(emulator, media: Media) -> None:
    with emulator(latency=0.1, seed=10) as url:
        with SyncRunwareClient(API_KEY, base_url=url, poll=FAST_POLL, retry=FAST_RETRY) as client:
            video = client.upload(media.video).media_uuid
            audio = client.upload(media.audio).media_url
            assert audio is not None
            results = client.lipsync_many(requests_for(video, audio, 3))
        assert len(results) == 3 and url.stats()["accepted"] == 3
