"""The README's example pipeline, run as a team runs its own flow: TTS, build_segments from a manifest in
memory, every language submitted, one wait, download, checks, its own publish step; sync and async."""

from __future__ import annotations

from pathlib import Path

import pytest
from user_runs import REPO, flow_run_of, run_script, task_run_names

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.media.probe import probe

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("composition")]

EXAMPLE = REPO / "examples" / "tts_dub_pipeline.py"
STEPS = ("probe-media", "build-segments", "submit-lipsync-job", "wait-for-lipsync-jobs",
         "download-lipsync-output", "run-quality-checks")  # fmt: skip


def test_a_users_sync_and_async_flows_deliver_both_languages_and_pay_each_job_once(
    server, tmp_path: Path
) -> None:
    with run_emulator(latency=0.5) as emulator:
        sync = run_script(
            EXAMPLE, "--out", str(tmp_path / "sync"), server=server, emulator=emulator, cache=tmp_path / "a"
        )
        assert sync.returncode == 0, sync.stdout[-3000:] + sync.stderr[-3000:]
        after_sync = emulator.stats()
        # The same source and the same speech from another flow on another machine (its own journal):
        # the same jobs, so the service answers that it has them and nothing is paid again.
        source = str(tmp_path / "sync" / "source.mp4")
        asynchronous = run_script(
            EXAMPLE, "--out", str(tmp_path / "async"), "--source", source, "--async",
            server=server, emulator=emulator, cache=tmp_path / "b",
        )  # fmt: skip
        assert asynchronous.returncode == 0, asynchronous.stdout[-3000:] + asynchronous.stderr[-3000:]
        # A re-run of the first flow: its journal knows both jobs; nothing uploaded or paid again.
        again = run_script(
            EXAMPLE, "--out", str(tmp_path / "sync"), server=server, emulator=emulator, cache=tmp_path / "a"
        )
        assert again.returncode == 0, again.stderr[-3000:]
        counters = emulator.stats()
    assert after_sync["accepted"] == 2
    assert counters["accepted"] == counters["distinct_task_uuids"] == 2
    for out in ("sync", "async"):
        for language in ("es", "de"):
            published = tmp_path / out / "published" / language / f"promo.{language}.mp4"
            assert published.exists(), published
            info = probe(published, cache=None)
            assert info.has_audio and info.video is not None and abs(info.duration - 6.5) < 0.2
    for flow_name in ("dub-pipeline", "dub-pipeline-async"):
        (run, *_) = flow_run_of(server, flow_name)
        assert run["state_type"] == "COMPLETED", run
        names = task_run_names(server, run["id"], at_least=12)
        for step in STEPS:
            # Two languages: one submit, download and check each; one probe, one build, one wait for both.
            expected = (
                2 if step in ("submit-lipsync-job", "download-lipsync-output", "run-quality-checks") else 1
            )
            assert sum(n.startswith(f"{step}-") for n in names) == expected, (step, names)
        assert sum(n.startswith("publish-dub-") for n in names) == 2, names
