"""Never pay twice, from a team's own flow: task retries and a flow retry after the accept, a re-run,
the same job mapped twice, the same job from a second machine (its own journal); the service loses
every new task's submit answer after accepting it (the client asks again and is told it has it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from infra import make_tiny_media
from user_runs import flow_run_of, run_script, task_run_names

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.media.synth import make_tone

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("composition")]

SCRIPT = Path(__file__).parent / "pay_once_flows.py"


def _manifest(root: Path) -> Path:
    media = make_tiny_media(root)
    other = make_tone(root / "l2.wav", duration=0.8, frequency=650)
    document = {
        "version": 1,
        "name": "payonce",
        "video": str(media.video),
        "languages": {
            "es": {"lines": [{"id": "a", "start": 0.4, "end": 1.2, "audio": str(media.line)}]},
            "de": {"lines": [{"id": "a", "start": 0.4, "end": 1.2, "audio": str(other)}]},
        },
    }
    path = root / "manifest.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_retries_reruns_and_maps_of_a_users_flow_pay_each_job_once(server, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    markers = tmp_path / "markers"
    markers.mkdir()
    with run_emulator(latency=0.3, lose_submit_rate=1.0) as emulator:

        def run(mode: str, cache: str) -> list[str]:
            done = run_script(
                SCRIPT,
                mode,
                str(manifest),
                str(markers),
                server=server,
                emulator=emulator,
                cache=tmp_path / cache,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            return list(json.loads(done.stdout.strip().splitlines()[-1]))

        retried = run("retried", "a")
        assert emulator.stats()["accepted"] == 2
        rerun = run("retried", "a")  # a re-run of the whole flow, on the same machine
        mapped = run("mapped", "b")  # each job twice in one map, on a machine with a journal of its own
        counters = emulator.stats()
    assert sorted(retried) == sorted(rerun) == mapped and len(set(mapped)) == 2
    assert counters["accepted"] == counters["distinct_task_uuids"] == 2
    assert counters["faults"]["lost_submits"] == 2  # each new task's answer was lost once, after the accept
    assert counters["conflicts"] >= 2  # ... and the client's second ask was told the task exists
    (_latest, first) = flow_run_of(server, "retried-submits")[:2]
    assert first["run_count"] == 2 and first["state_type"] == "COMPLETED", first
    names = task_run_names(server, first["id"], at_least=8)
    # Each job's submit ran in three task runs (a task retry, then the flow's retry), accepted once.
    assert sum(n.startswith("submit-lipsync-job-") for n in names) >= 4, names
