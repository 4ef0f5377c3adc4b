"""Run options every flow shares, and credentials named by a saved block: from async flows, every flow."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr

from prefect_lipsync.blocks import RunwareCredentials
from prefect_lipsync.demo import build_demo
from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.flows.localize import lipsync_video, localize_batch, localize_video
from prefect_lipsync.flows.options import RunOptions

pytestmark = pytest.mark.slow

KEY = "rw-block-KEY-5b1e7c0d2a-by-name"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("options-demo")
    build_demo(root)
    return root


def one_language(demo_root: Path, dest: Path, name: str) -> Path:
    shutil.copytree(demo_root, dest)
    manifest = dest / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("name: demo", f"name: {name}").split("  de:")[0])
    return manifest


@pytest.mark.parametrize("flow", [localize_video, localize_batch, lipsync_video], ids=lambda f: f.name)
def test_every_flow_takes_every_run_option_with_the_same_default(flow: object) -> None:
    parameters = inspect.signature(flow.fn).parameters  # type: ignore[attr-defined]
    not_offered = {"approval_timeout_s"} if flow is localize_batch else set()
    defaults = RunOptions()
    for name in set(RunOptions.names()) - not_offered:
        assert name in parameters, f"{flow.name} lacks the run option {name}"  # type: ignore[attr-defined]
        assert parameters[name].default == getattr(defaults, name), name


async def test_a_block_name_that_does_not_exist_fails_every_flow_at_once_naming_it(
    demo_root: Path, tmp_path: Path
) -> None:
    manifest = one_language(demo_root, tmp_path / "m", "noblock")
    with run_emulator(latency=0.1) as base_url:
        runs = [
            await localize_video(
                manifest=str(manifest),
                out_dir=str(tmp_path / "out"),
                credentials_block="no-such-block",
                return_state=True,
            ),
            await localize_batch(
                folder=str(manifest.parent),
                out_dir=str(tmp_path / "out"),
                pattern="manifest.yaml",
                credentials_block="no-such-block",
                return_state=True,
            ),
            await lipsync_video(
                video=str(demo_root / "media" / "source.mp4"),
                audio=str(demo_root / "media" / "es" / "l001.wav"),
                out_dir=str(tmp_path / "out"),
                credentials_block="no-such-block",
                return_state=True,
            ),
        ]
        counters = base_url.stats()
    for state in runs:
        assert state.is_failed()
        assert "No RunwareCredentials block named 'no-such-block'" in str(state.message)
    assert counters["uploads"] == 0 and counters["accepted"] == 0


async def test_a_saved_block_named_in_a_parameter_is_loaded_inside_the_async_flows_and_used(
    demo_root: Path, tmp_path: Path
) -> None:
    manifest = one_language(demo_root, tmp_path / "m", "byname")
    with run_emulator(latency=0.2, api_key=KEY) as base_url:  # any other key is refused
        await RunwareCredentials(api_key=SecretStr(KEY), base_url=str(base_url)).save(
            "team-runware", overwrite=True
        )
        video = await localize_video(
            manifest=str(manifest),
            out_dir=str(tmp_path / "out"),
            credentials_block="team-runware",
            quality_policy="warn",
            return_state=True,
        )
        single = await lipsync_video(
            video=str(demo_root / "media" / "source.mp4"),
            audio=str(demo_root / "media" / "es" / "l001.wav"),
            out_dir=str(tmp_path / "out"),
            name="single",
            credentials_block="team-runware",
            quality_policy="warn",
            return_state=True,
        )
        counters = base_url.stats()
    assert video.is_completed(), video.message
    assert single.is_completed(), single.message
    # The block's key reached the service (the emulator refuses any other); not the in-process emulator.
    assert counters["accepted"] == 2
    output = await single.result()
    assert output.output and Path(output.output).exists()
    assert (await video.result()).offline is False


async def test_lipsync_video_refuses_a_name_that_would_leave_out_dir_before_writing_anything(
    demo_root: Path, tmp_path: Path
) -> None:
    state = await lipsync_video(
        video=str(demo_root / "media" / "source.mp4"),
        audio=str(demo_root / "media" / "es" / "l001.wav"),
        out_dir=str(tmp_path / "out"),
        name="../../x",
        return_state=True,
    )
    assert state.is_failed()
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.yaml"))
