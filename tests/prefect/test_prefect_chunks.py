"""A fanned-out batch's chunks: how manifests are shared out, and `localize-manifests` run as a flow
(one chunk, its manifests task runs in this process), writing each manifest's outcome as it ends."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr

from prefect_lipsync.blocks import RunwareCredentials
from prefect_lipsync.demo import build_demo
from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.flows.chunk import chunk_parameters, localize_manifests, read_outcomes
from prefect_lipsync.flows.fanout import concurrency_per_chunk, plan_chunks
from prefect_lipsync.pipeline.destination import Destination


def test_manifests_are_dealt_into_chunks_each_once_and_never_into_an_empty_chunk() -> None:
    manifests = [Path(f"m{i}.yaml") for i in range(10)]
    chunks = plan_chunks(manifests, 4)
    assert [len(c) for c in chunks] == [3, 3, 2, 2]
    assert sorted(m for c in chunks for m in c) == sorted(manifests)
    assert plan_chunks(manifests[:3], 8) == [[m] for m in manifests[:3]]
    assert plan_chunks(manifests, 0) == [manifests]


def test_the_chunks_together_keep_to_the_batch_manifests_at_once() -> None:
    assert concurrency_per_chunk(10, 4) == 3
    assert concurrency_per_chunk(2, 4) == 1
    assert concurrency_per_chunk(32, 1) == 32


def test_a_chunk_is_given_its_share_and_the_batch_names_never_a_secret() -> None:
    base = {"manifest": "/in/a.yaml", "out_dir": "/out", "credentials_block": "runware", "rerun_nonce": None}
    parameters = chunk_parameters(base, [Path("/in/a.yaml"), Path("/in/b.yaml")], 3, "k-1-0")
    assert parameters == {
        "out_dir": "/out",
        "credentials_block": "runware",
        "rerun_nonce": None,
        "manifests": ["/in/a.yaml", "/in/b.yaml"],
        "max_concurrent_manifests": 3,
        "outcomes_key": "k-1-0",
    }


@pytest.mark.slow
async def test_a_chunk_runs_its_manifests_writes_each_outcome_and_a_rerun_skips_what_is_done(
    tmp_path: Path,
) -> None:
    demo = tmp_path / "demo"
    build_demo(demo)
    manifests = []
    for i in range(2):
        folder = tmp_path / "inbox" / f"m{i}"
        shutil.copytree(demo, folder)
        manifest = folder / "manifest.yaml"
        manifest.write_text(
            manifest.read_text()
            .replace("name: demo", f"name: chunk-{i}")
            .replace("start: 0.5", f"start: {0.5 + 0.04 * i:.2f}")
        )
        manifests.append(str(manifest.resolve()))
    out = tmp_path / "out"
    with run_emulator(latency=0.3) as base_url:
        creds = RunwareCredentials(api_key=SecretStr("chunk-test-key"), base_url=str(base_url))
        result = await localize_manifests(
            manifests=manifests,
            out_dir=str(out),
            credentials=creds,
            quality_policy="warn",
            outcomes_key="batch-1-0",
        )
        assert sorted(result.done) == manifests and not result.failed
        outcomes = read_outcomes(Destination.of(str(out)), "batch-1-0").manifests
        assert sorted(outcomes) == manifests
        for manifest, outcome in outcomes.items():
            assert outcome.completed and outcome.marked_done
            assert outcome.outcome is not None and outcome.outcome.manifest == manifest
            assert sorted(o.language for o in outcome.outcome.outputs) == ["de", "es"]
        again = await localize_manifests(
            manifests=manifests, out_dir=str(out), credentials=creds, outcomes_key="batch-1-1"
        )
        counters = base_url.stats()
    assert sorted(again.skipped) == manifests and not again.done
    assert counters["accepted"] == counters["distinct_task_uuids"] == 4  # each job paid once
