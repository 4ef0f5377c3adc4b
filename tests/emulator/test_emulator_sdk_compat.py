"""The official SDK (runware-sdk 1.8.0, REST transport) works against the emulator unchanged."""

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
