"""The official SDK (runware-sdk 1.8.0), over REST and over its WebSocket transport, works against
the emulator unchanged."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from runware import Runware, RunwareError

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.emulator.service import TRANSIENT_MESSAGE
from prefect_lipsync.media.ffmpeg_runner import run_ffprobe_json


def sdk(base_url: str) -> Runware:
    return Runware(api_key="sdk-key", transport="rest", http_base_url=base_url, validate=False, max_retries=0)


def ws_sdk(base_url: str, **config: Any) -> Runware:
    """The SDK on its default transport, the WebSocket, pointed at the emulator's ws://.../v1."""
    return Runware(
        api_key="sdk-key",
        transport="websocket",
        ws_base_url=base_url.replace("http://", "ws://", 1),
        validate=False,
        max_retries=0,
        **config,
    )


def segment_job(video_uuid: str, audio_url: str) -> dict[str, Any]:
    return {
        "taskType": "videoInference",
        "model": "sync:3@0",
        "inputs": {"video": video_uuid},
        "settings": {"segments": [{"startTime": 0.5, "endTime": 1.5, "audio": audio_url}]},
        "includeCost": True,
        "numberResults": 2,
    }


@pytest.mark.slow
async def test_official_sdk_uploads_media_and_runs_a_sync3_job(
    card: Path, tone880: Path, tmp_path: Path
) -> None:
    with run_emulator(latency=0.3, api_key="sdk-key") as base_url:
        client = sdk(base_url)
        try:
            video = (
                await client.media_storage(
                    {"operation": "upload", "media": base64.b64encode(card.read_bytes()).decode()}
                )
            )[0]
            audio = (
                await client.media_storage(
                    {
                        "operation": "upload",
                        "media": "data:audio/wav;base64," + base64.b64encode(tone880.read_bytes()).decode(),
                    }
                )
            )[0]
            results: list[dict[str, Any]] = await client.run(
                {
                    "taskType": "videoInference",
                    "model": "sync:3@0",
                    "inputs": {"video": video["mediaUUID"]},
                    "settings": {
                        "segments": [{"startTime": 0.5, "endTime": 1.5, "audio": audio["mediaURL"]}]
                    },
                    "includeCost": True,
                    "numberResults": 2,
                }
            )
        finally:
            await client.close()
        assert len(results) == 2 and all(r["status"] == "success" for r in results)
        assert all(r["cost"] > 0 and r["emulated"] is True for r in results)
        out = tmp_path / "out.mp4"
        out.write_bytes(httpx.get(results[0]["videoURL"], timeout=60).content)
        assert float(run_ffprobe_json(out)["format"]["duration"]) == pytest.approx(3.0, abs=0.06)
        stats = base_url.stats()
        assert stats["requests"]["getResponse"] >= 1 and stats["accepted"] == 1 and stats["uploads"] == 2


@pytest.mark.slow
async def test_official_sdk_raises_the_task_failure_in_either_shape(card: Path) -> None:
    with run_emulator(latency=0, task_error_rate=1.0, seed=0) as base_url:
        client = sdk(base_url)
        messages = []
        try:
            video = (
                await client.media_storage(
                    {"operation": "upload", "media": base64.b64encode(card.read_bytes()).decode()}
                )
            )[0]
            for i in range(2):  # seed 0 gives both failure shapes within two tasks
                with pytest.raises(RunwareError) as failure:
                    await client.run(
                        {
                            "taskType": "videoInference",
                            "model": "sync:3@0",
                            "inputs": {"video": video["mediaUUID"]},
                            "speech": {"text": f"take {i}"},
                        }
                    )
                # The SDK maps the raw code to its own enum ("timeoutProvider" -> "unknown"): check
                # that it saw the task's failure, from either shape.
                messages.append((str(failure.value), failure.value.task_uuid is not None))
        finally:
            await client.close()
        assert messages == [(TRANSIENT_MESSAGE, True)] * 2
        shapes = {job.failure.shape for job in base_url.emulator.jobs.values() if job.failure}
        assert shapes == {"errors", "data"}


@pytest.mark.slow
async def test_official_sdk_over_websocket_uploads_media_and_runs_a_sync3_job(
    card: Path, tone880: Path, tmp_path: Path
) -> None:
    with run_emulator(latency=0.3, api_key="sdk-key") as base_url:
        client = ws_sdk(base_url)
        try:
            await client.connect()
            video = (
                await client.media_storage(
                    {"operation": "upload", "media": base64.b64encode(card.read_bytes()).decode()}
                )
            )[0]
            audio = (
                await client.media_storage(
                    {
                        "operation": "upload",
                        "media": "data:audio/wav;base64," + base64.b64encode(tone880.read_bytes()).decode(),
                    }
                )
            )[0]
            results: list[dict[str, Any]] = await client.run(
                segment_job(video["mediaUUID"], audio["mediaURL"])
            )
        finally:
            await client.close()
        assert len(results) == 2 and all(r["status"] == "success" for r in results)
        assert all(r["cost"] > 0 and r["emulated"] is True for r in results)
        out = tmp_path / "out.mp4"
        out.write_bytes(httpx.get(results[0]["videoURL"], timeout=60).content)
        assert float(run_ffprobe_json(out)["format"]["duration"]) == pytest.approx(3.0, abs=0.06)
        stats = base_url.stats()
        # All of it on one socket: no POST reached the REST endpoint.
        assert stats["ws_connections"] == 1 and stats["http_requests"] == 0
        assert stats["requests"]["getResponse"] >= 1 and stats["accepted"] == 1 and stats["uploads"] == 2


@pytest.mark.slow
async def test_official_sdk_over_websocket_is_refused_with_a_wrong_key() -> None:
    with run_emulator(latency=0, api_key="the-right-key") as base_url:
        client = ws_sdk(base_url, max_reconnect_attempts=0)
        try:
            with pytest.raises(RunwareError, match="not valid"):
                await client.connect()
        finally:
            await client.close()


@pytest.mark.slow
async def test_official_sdk_over_websocket_survives_a_dropped_connection_after_its_submit(
    card: Path,
) -> None:
    # Seed 4: the first accepted submit loses its answer by a dropped connection. The SDK
    # reconnects with its connectionSessionUUID, sends the task again, reads conflictTaskUUID
    # as the ACK it missed, and polls to the end: one job, paid once.
    with run_emulator(latency=0.2, api_key="sdk-key", lose_submit_rate=1.0, seed=4) as base_url:
        client = ws_sdk(base_url, retry_delay=50)
        try:
            await client.connect()
            session = client._ws_transport.session_id if client._ws_transport else None
            video = (
                await client.media_storage(
                    {"operation": "upload", "media": base64.b64encode(card.read_bytes()).decode()}
                )
            )[0]
            results = await client.run(
                {
                    "taskType": "videoInference",
                    "model": "sync:3@0",
                    "inputs": {"video": video["mediaUUID"]},
                    "speech": {"text": "again"},
                }
            )
            resumed = client._ws_transport.session_id if client._ws_transport else None
        finally:
            await client.close()
        assert [r["status"] for r in results] == ["success"]
        stats = base_url.stats()
        assert stats["faults"]["lost_submits"] == 1 and stats["ws_connections"] == 2
        assert (stats["accepted"], stats["conflicts"]) == (1, 1)
        assert session is not None and resumed == session  # the session was accepted again
