"""Nothing is uploaded or submitted for a job that pre-flight or the run's budget refuses (emulator stats)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prefect_lipsync.blocks import LipsyncSettings
from prefect_lipsync.demo import build_demo
from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.flows.localize import localize_video
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.media.probe import probe
from prefect_lipsync.media.synth import make_silence

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("preflight-demo")
    build_demo(root)
    return root


async def run_counting(manifest: Path, out: Path, **kwargs: object) -> tuple[object, dict[str, int]]:
    with run_emulator(latency=0.2) as base_url:
        state = await localize_video(
            manifest=str(manifest), out_dir=str(out), base_url=str(base_url), return_state=True, **kwargs
        )
        return state, base_url.stats()


async def test_silent_dub_line_is_refused_by_preflight_and_nothing_is_uploaded_or_submitted(
    demo_root: Path, tmp_path: Path
) -> None:
    work = tmp_path / "silent"
    shutil.copytree(demo_root, work)
    make_silence(work / "media" / "es" / "l002.wav", duration=2.2)  # the actor's take came out silent
    state, stats = await run_counting(work / "manifest.yaml", tmp_path / "out", languages=["es"])
    assert state.is_failed() and "pre-flight failed" in str(state.message) and "l002" in str(state.message)
    assert (
        stats["uploads"] == 0 and stats["accepted"] == 0 and stats["requests"].get("videoInference", 0) == 0
    )


async def test_source_that_probes_but_does_not_decode_is_refused_before_any_upload(
    demo_root: Path, tmp_path: Path
) -> None:
    work = tmp_path / "corrupt"
    shutil.copytree(demo_root, work)
    source = work / "media" / "source.mp4"
    # Index at the front, then cut the file: ffprobe still reads it, decoding fails half way.
    faststart = work / "media" / "faststart.mp4"
    run_ffmpeg(["-y", "-i", str(source), "-c", "copy", "-movflags", "+faststart", str(faststart)])
    data = faststart.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    assert probe(source, cache=None).video is not None
    state, stats = await run_counting(work / "manifest.yaml", tmp_path / "out")
    assert state.is_failed() and "pre-flight failed" in str(state.message)
    assert stats["uploads"] == 0 and stats["accepted"] == 0


async def test_run_over_its_budget_is_refused_before_anything_is_paid(
    demo_root: Path, tmp_path: Path
) -> None:
    work = tmp_path / "budget"
    shutil.copytree(demo_root, work)
    state, stats = await run_counting(
        work / "manifest.yaml", tmp_path / "out", settings=LipsyncSettings(budget_usd_per_run=1.0)
    )
    # Two languages x 9 s x 0.13 USD/s = 2.34 USD estimated.
    assert state.is_failed() and "exceeds the budget of $1.00" in str(state.message)
    assert stats["uploads"] == 0 and stats["accepted"] == 0
