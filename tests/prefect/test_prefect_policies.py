"""lipsync_video, and the quality policies: fail, warn, and ask (a person approves, rejects, or never answers)."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_runs import aresume_flow_run

from prefect_lipsync.blocks import LipsyncSettings
from prefect_lipsync.demo import build_demo
from prefect_lipsync.flows.localize import SegmentInput, lipsync_video, localize_video
from prefect_lipsync.media.probe import probe
from prefect_lipsync.quality import QualityThresholds

pytestmark = pytest.mark.slow

# The emulator copies the picture (SSIM outside the face about 0.995); demanding 0.9999 makes every
# output fail a post-check while the pre-flight, which does not look at outputs, still passes.
FAILING = LipsyncSettings(quality=QualityThresholds(outside_face_min_ssim=0.9999))


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("policy-demo")
    build_demo(root)
    return root


def one_language(demo_root: Path, dest: Path, name: str) -> Path:
    shutil.copytree(demo_root, dest)
    manifest = dest / "manifest.yaml"
    text = manifest.read_text().replace("name: demo", f"name: {name}")
    manifest.write_text(text.split("  de:")[0])  # Spanish only: quicker
    return manifest


async def test_lipsync_video_with_a_segment_list_makes_one_checked_output(
    demo_root: Path, tmp_path: Path
) -> None:
    media = demo_root / "media"
    output = await lipsync_video(
        video=str(media / "source.mp4"),
        segments=[
            SegmentInput(start=0.5, end=2.9, audio=str(media / "es" / "l001.wav")),
            SegmentInput(start=6.2, end=8.6, audio=str(media / "es" / "l003.wav")),
        ],
        out_dir=str(tmp_path),
        name="single",
        quality_policy="warn",
    )
    assert output.error is None and output.segments == 2 and output.output
    assert probe(output.output, cache=None).has_audio
    assert Path(output.report).exists()


async def test_lipsync_video_refuses_two_inputs_before_doing_anything(
    demo_root: Path, tmp_path: Path
) -> None:
    media = demo_root / "media"
    state = await lipsync_video(
        video=str(media / "source.mp4"),
        audio=str(media / "es" / "l001.wav"),
        segments=[SegmentInput(start=0.5, end=2.9, audio=str(media / "es" / "l001.wav"))],
        out_dir=str(tmp_path),
        return_state=True,
    )
    assert state.is_failed() and "exactly one of audio, speech, segments" in str(state.message)
    assert not (tmp_path / "lipsync").exists()


async def test_fail_policy_fails_the_run_and_warn_policy_completes_it(
    demo_root: Path, tmp_path: Path
) -> None:
    manifest = one_language(demo_root, tmp_path / "m", "policy-fail")
    failed = await localize_video(
        manifest=str(manifest), out_dir=str(tmp_path / "out"), settings=FAILING, return_state=True
    )
    assert failed.is_failed() and "Quality checks failed for es" in str(failed.message)
    warned = await localize_video(
        manifest=str(manifest),
        out_dir=str(tmp_path / "out"),
        settings=FAILING,
        quality_policy="warn",
        return_state=True,
    )
    assert warned.is_completed()


async def _resume_when_paused(tag: str, run_input: dict[str, Any] | None) -> None:
    """Resume the paused run tagged `tag`: this test's own (the server is the whole run's)."""
    async with get_client() as client:
        for _ in range(600):
            paused = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                    tags=FlowRunFilterTags(all_=[tag]),
                ),
                limit=10,
                sort=FlowRunSort.ID_DESC,
            )
            if paused:
                if run_input is not None:
                    await aresume_flow_run(paused[0].id, run_input=run_input)
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the flow never paused for approval")


@pytest.mark.parametrize(
    ("decision", "completes"),
    [
        ({"approved": True, "reviewer": "qa@example.com", "comment": "fine for a preview"}, True),
        ({"approved": False, "reviewer": "qa@example.com", "comment": "mouth drifts"}, False),
        (None, False),  # nobody answers: the timeout rejects
    ],
    ids=["approved", "rejected", "timeout"],
)
async def test_ask_policy_pauses_with_the_findings_until_a_person_decides(
    demo_root: Path,
    tmp_path: Path,
    decision: dict[str, Any] | None,
    completes: bool,
    prefect_caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = one_language(demo_root, tmp_path / "m", "policy-ask")
    tag = f"policy-ask-{uuid.uuid4().hex[:8]}"
    with tags(tag):  # the task copies the context: its flow run carries the tag
        run = asyncio.create_task(
            localize_video(
                manifest=str(manifest),
                out_dir=str(tmp_path / "out"),
                settings=FAILING,
                quality_policy="ask",
                approval_timeout_s=8,
                return_state=True,
            )
        )
    await _resume_when_paused(tag, decision)
    state = await asyncio.wait_for(run, timeout=180)
    assert state.is_completed() is completes, state.message
    delivery = tmp_path / "out" / "policy-ask" / "policy-ask.es.mp4"
    held = tmp_path / "out" / "policy-ask" / "quarantine" / "policy-ask.es.mp4"
    if completes:  # approved: what was held back is delivered, and its report says who approved and why
        (output,) = (await state.result()).outputs
        assert output.output == str(delivery) and delivery.exists() and not held.exists()
        review = json.loads(Path(output.report).read_text())["review"]
        assert review["approved"] is True and review["reviewer"] == "qa@example.com"
        assert review["comment"] == "fine for a preview"
    else:  # rejected or no answer: it stays out of delivery, in quarantine with its report
        assert not delivery.exists() and held.exists()
        review = json.loads(Path(str(held) + ".report.json").read_text())["review"]
        assert review["approved"] is False
    if decision and not completes:
        assert "mouth drifts" in str(state.message)
    if decision is None:  # the server may fail the timed-out pause first; the run's log says why
        logged = "\n".join(r.getMessage() for r in prefect_caplog.records)
        assert "No reviewer decision within 8 s" in logged
