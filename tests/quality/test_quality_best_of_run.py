"""Best of N through the job runner: the emulator makes three variations whose audio it moves by
+200 ms, 0 and -300 ms against a face whose lips follow the dub; the runner delivers the one in sync."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.media.synth import speak
from prefect_lipsync.pipeline import JobJournal, JobRunner, RunSettings, plan_run, run_jobs
from prefect_lipsync.runware.client import RunwareClient

from .talking_face import FACE_BOX, make_talking_face

pytestmark = pytest.mark.slow


async def test_with_three_variations_the_run_delivers_the_one_in_sync_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_LIPSYNC_CACHE_DIR", str(tmp_path / "cache"))
    speech = speak(
        "Hola a todos y bienvenidos. Esta es una prueba de doblaje.", tmp_path / "es.wav", voice="es"
    )
    video = make_talking_face(tmp_path / "face.mp4", speech, duration=5.0)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "bestof",
                "video": str(video),
                "speakers": {"host": {"box": list(FACE_BOX)}},
                "languages": {"es": {"audio": str(speech)}},
            }
        )
    )
    settings = RunSettings(number_results=3)
    plan = await asyncio.to_thread(plan_run, manifest, settings)
    assert plan.jobs[0].request.number_results == 3 and plan.estimated_cost_usd > 0
    with run_emulator(latency=0.2, variation_audio_offsets=(0.2, 0.0, -0.3)) as base_url:
        journal = JobJournal.for_endpoint(str(base_url))
        async with RunwareClient(
            api_key=SecretStr("k"), base_url=str(base_url), upload_cache=journal.uploads
        ) as c:
            runner = JobRunner(
                c, settings, out_dir=tmp_path / "out", journal=journal, offline=True, policy="warn"
            )
            (output,) = await run_jobs(runner, plan)
        stats = base_url.stats()
    assert output.error is None and stats["accepted"] == 1  # one task, three results
    assert output.output == str(tmp_path / "out" / "bestof.es.mp4")
    assert sorted(Path(p).name for p in output.extra_outputs) == ["bestof.es.2.mp4", "bestof.es.3.mp4"]
    report = json.loads(Path(output.report).read_text())
    assert abs(report["lipsync"][0]["lag_ms"]) <= 40  # the delivered one is the variation made in sync
    assert output.chosen_because and "variation 2 of 3" in output.chosen_because
    assert output.chosen_because in report["notes"]
