"""Uploads (streamed, deduplicated by content) and downloads (atomic, retried, no key sent)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from prefect_lipsync.runware import (
    DownloadError,
    DownloadPolicy,
    MediaUpload,
    MemoryUploadCache,
    RunwareClient,
)
from prefect_lipsync.runware.uploads import body_length, stream_body

from .conftest import API_KEY, FAST_POLL, FAST_RETRY, Media, Reply, requests_for, scripted_server

QUICK_DOWNLOADS = DownloadPolicy(attempts=4, initial_delay=0.01, max_delay=0.05, fresh_window=0.5)


def _client(url: str, **kw: object) -> RunwareClient:
    return RunwareClient(
        API_KEY,
        base_url=url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        download_policy=QUICK_DOWNLOADS,
        **kw,  # type: ignore[arg-type]
    )


async def test_streamed_upload_body_is_the_exact_json_envelope(tmp_path: Path) -> None:
    data = bytes(range(256)) * 41 + b"xy"  # not a multiple of 3: padding only at the very end
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    task_uuid = "3f1c2a4e-8b7d-4c1e-9a2b-1234567890ab"
    chunks = [c async for c in stream_body(path, task_uuid, chunk_bytes=300)]
    body = b"".join(chunks)
    assert len(body) == body_length(len(data), task_uuid)
    [task] = json.loads(body)
    assert task == {
        "taskType": "mediaStorage",
        "taskUUID": task_uuid,
        "operation": "upload",
        "media": base64.b64encode(data).decode(),
    }
    assert max(len(c) for c in chunks) <= 400


async def test_the_same_file_is_uploaded_once_even_concurrently(
    emulator, media: Media, tmp_path: Path
) -> None:
    copy = tmp_path / "same-content.mp4"
    copy.write_bytes(media.video.read_bytes())
    with emulator() as url:
        async with _client(url) as client:
            ups = await asyncio.gather(*(client.upload(media.video) for _ in range(4)), client.upload(copy))
            again = await client.upload(str(media.video))
            other = await client.upload(media.audio)
        stats = url.stats()
    assert len({u.media_uuid for u in [*ups, again]}) == 1
    assert other.media_uuid != again.media_uuid
    assert stats["uploads"] == 2
    assert stats["upload_bytes"] == media.video.stat().st_size + media.audio.stat().st_size


async def test_a_persistent_upload_cache_skips_known_content(emulator, media: Media) -> None:
    cache = MemoryUploadCache()
    with emulator() as url:
        async with _client(url, upload_cache=cache) as first:
            known = await first.upload(media.audio)
        async with _client(url, upload_cache=cache) as second:
            assert await second.upload(media.audio) == known
        assert url.stats()["uploads"] == 1


async def test_download_writes_the_whole_result_and_leaves_no_temp_file(
    emulator, media: Media, tmp_path: Path
) -> None:
    with emulator(latency=0.1, download_error_rate=1.0, seed=3) as url:
        async with _client(url) as client:
            video = (await client.upload(media.video)).media_uuid
            audio = (await client.upload(media.audio)).media_url
            assert audio is not None
            [[result]] = await client.lipsync_many(requests_for(video, audio, 1))
            # First GET answers 422/502 (just after success); the retry gets the file.
            out = await client.download(result, tmp_path / "out" / "result.mp4")
        stats = url.stats()
    assert out.stat().st_size == stats["download_bytes"] > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.mp4"]


async def test_a_cut_short_download_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    payload = b"v" * 10_000
    target = tmp_path / "result.mp4"
    target.write_bytes(b"previous good file")
    with scripted_server([Reply(200, payload, cut_after=4_000)]) as server:
        async with _client(server.url + "/v1") as client:
            with pytest.raises(DownloadError, match=r"cut short|failed"):
                await client.download(server.url + "/outputs/x.mp4", target)
        assert len(server.seen) == QUICK_DOWNLOADS.attempts
    assert target.read_bytes() == b"previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.mp4"]


async def test_a_missing_result_is_retried_briefly_then_download_error(tmp_path: Path) -> None:
    with scripted_server([Reply(404, b"gone")]) as server:
        async with _client(server.url + "/v1") as client:
            with pytest.raises(DownloadError) as info:
                await client.download(server.url + "/outputs/x.mp4?sig=secret", tmp_path / "r.mp4")
    assert info.value.status_code == 404 and "sig=secret" not in str(info.value)
    assert 2 <= len(server.seen) <= QUICK_DOWNLOADS.attempts
    assert list(tmp_path.iterdir()) == []


async def test_downloads_never_carry_the_api_key(tmp_path: Path) -> None:
    with scripted_server([Reply(200, b"data")]) as server:
        async with _client(server.url + "/v1") as client:
            await client.download(server.url + "/outputs/x.mp4", tmp_path / "r.mp4")
    [(_, _, headers, _)] = server.seen
    assert "authorization" not in {k.lower() for k in headers}
    assert API_KEY not in json.dumps(headers)


async def test_a_refused_upload_keeps_nothing_in_flight(tmp_path: Path) -> None:
    answer = {"errors": [{"code": "invalidMedia", "message": "not media", "parameter": "media"}]}
    with scripted_server([Reply(400, answer), Reply(200, {"data": [{"mediaUUID": "m-2"}]})]) as server:
        async with _client(server.url + "/v1") as client:
            with pytest.raises(Exception, match="not media"):
                await client.upload(b"zzz")
            assert await client.upload(b"zzz") == MediaUpload(mediaUUID="m-2")


async def test_a_result_whose_rendering_failed_is_asked_for_once_and_the_error_says_why(
    tmp_path: Path,
) -> None:
    said = {
        "errors": [
            {"code": "renderFailed", "message": "the emulator could not render this output: bad audio"}
        ]
    }
    with scripted_server([Reply(500, said)]) as server:
        async with _client(server.url + "/v1") as client:
            with pytest.raises(DownloadError) as info:
                await client.download(server.url + "/outputs/x.mp4", tmp_path / "r.mp4")
        assert len(server.seen) == 1  # the same render fails the same way: no retry
    error = info.value
    assert error.code == "renderFailed" and error.status_code == 500
    assert "answered HTTP 500: the emulator could not render this output: bad audio" in str(error)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "reply",
    [
        Reply(500, b"<html>Internal Server Error</html>"),
        Reply(503, {"errors": [{"code": "renderTimeout", "message": "busy, try again"}]}),
        Reply(500, {"errors": [{"code": "internalServerError", "message": "oops"}]}),
    ],
    ids=["html-500", "render-timeout-503", "server-500"],
)
async def test_a_transient_5xx_download_is_still_retried_then_says_what_the_server_said(
    reply: Reply, tmp_path: Path
) -> None:
    with scripted_server([reply]) as server:
        async with _client(server.url + "/v1") as client:
            with pytest.raises(DownloadError) as info:
                await client.download(server.url + "/outputs/x.mp4", tmp_path / "r.mp4")
        assert len(server.seen) == QUICK_DOWNLOADS.attempts
    assert info.value.status_code == reply.status
    if isinstance(reply.body, dict):
        assert reply.body["errors"][0]["message"] in str(info.value)


async def test_a_result_that_cannot_be_rendered_fails_its_download_once_on_the_emulator(
    emulator, media: Media, tmp_path: Path
) -> None:
    garbage = tmp_path / "not-audio.wav"
    garbage.write_bytes(b"RIFF but not a wave file at all" * 10)
    with emulator(latency=0.05) as url:
        async with _client(url) as client:
            video = (await client.upload(media.video)).media_uuid
            audio = (await client.upload(garbage)).media_url
            assert audio is not None
            [[result]] = await client.lipsync_many(requests_for(video, audio, 1))
            with pytest.raises(DownloadError) as info:
                await client.download(result, tmp_path / "out" / "result.mp4")
        stats = url.stats()
    assert info.value.code == "renderFailed" and info.value.task_uuid == result.task_uuid
    assert "could not render" in str(info.value)
    assert stats["renders"] == 0 and stats["downloads"] == 0
