"""The `localize-adhoc` deployment of deployments/prefect.yaml, as an operator runs it: a real
`prefect server start` (SQLite, loopback), a process work pool, `prefect deploy`, `run_deployment` with
parameters, and `prefect worker start --run-once` executing the flow run in its own process.

This module does not use the session `prefect_test_harness` of conftest.py (a harness must not be nested,
and here the server, the CLI and the worker are separate processes, as in production).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect_operator import PREFECT_FILE, Operator, running_server, tail, wait_for

from prefect_lipsync.demo import build_demo


def adhoc_entry() -> dict[str, Any]:
    """The `localize-adhoc` entry of the real prefect.yaml: what the deployment on the server must match."""
    config = yaml.safe_load(PREFECT_FILE.read_text())
    (entry,) = (d for d in config["deployments"] if d["name"] == "localize-adhoc")
    return dict(entry)


@pytest.fixture(autouse=True)
def prefect_server() -> None:
    """Replaces the session harness of conftest.py for this module: the test starts its own server."""
    return None


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    """A real `prefect server start` on a free loopback port with SQLite in a fresh PREFECT_HOME."""
    with running_server(tmp_path) as op:
        yield op


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_adhoc_deployment_from_prefect_yaml_runs_on_a_process_worker_and_completes_with_outputs(
    operator: Operator, tmp_path: Path
) -> None:
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[step] = now - clock
        clock = now

    manifest = build_demo(tmp_path / "demo")
    out_dir = tmp_path / "out"
    lap("demo media")

    pool = f"lipsync-test-{uuid.uuid4().hex[:8]}"
    created = operator.prefect("work-pool", "create", pool, "--type", "process")
    assert created.returncode == 0, tail(created)
    lap("work-pool create")

    # The real prefect.yaml; --pool points the deployment at this test's pool instead of `lipsync`.
    # (With FastAPI >= 0.151 the server answers 422 to the null limit/offset that prefect 3.8.8's CLI
    # sends to workers/filter right after creating the deployment, and `prefect deploy` exits 1.)
    deployed = operator.prefect(
        "--no-prompt",
        "deploy",
        "--prefect-file",
        str(PREFECT_FILE),
        "--name",
        "localize-adhoc",
        "--pool",
        pool,
    )
    assert deployed.returncode == 0, tail(deployed)
    # The example downstream step, triggered by each delivered output's event.
    downstream = operator.prefect(
        "--no-prompt", "deploy", "--prefect-file", str(PREFECT_FILE), "--name", "publish-dub", "--pool", pool
    )
    assert downstream.returncode == 0, tail(downstream)
    entry = adhoc_entry()
    deployment = operator.get("/deployments/name/localize-video/localize-adhoc")
    assert deployment["entrypoint"] == entry["entrypoint"] == "prefect_lipsync.flows.video.localize_video"
    assert deployment["work_pool_name"] == pool
    assert deployment["pull_steps"] == []  # module-path entrypoint: nothing is fetched at run time
    assert deployment["parameters"] == entry["parameters"]
    lap("prefect deploy")

    parameters = {"manifest": str(manifest), "out_dir": str(out_dir), "quality_policy": "warn"}
    started = operator.python(
        "import json, sys\n"
        "from prefect.deployments import run_deployment\n"
        "run = run_deployment('localize-video/localize-adhoc', parameters=json.loads(sys.argv[1]), timeout=0)\n"
        "print(json.dumps({'id': str(run.id), 'state': run.state.type}))\n",
        json.dumps(parameters),
    )
    assert started.returncode == 0, tail(started)
    scheduled = json.loads(started.stdout.strip().splitlines()[-1])
    assert scheduled["state"] == "SCHEDULED"  # timeout=0: queued for a worker, not run here
    run_id = scheduled["id"]
    lap("run_deployment")

    worker = operator.prefect("worker", "start", "--pool", pool, "--run-once", timeout=300)
    assert worker.returncode == 0, tail(worker)
    assert run_id in worker.stdout + worker.stderr  # this worker picked up this run
    lap("worker --run-once")

    flow_run = wait_for(
        lambda: (
            (run := operator.get(f"/flow_runs/{run_id}"))["state"]["type"]
            in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
            and run
        ),
        timeout=30,
        what="a final state of the flow run",
    )
    assert flow_run["state"]["type"] == "COMPLETED", (flow_run["state"], tail(worker))
    assert flow_run["deployment_id"] == deployment["id"]
    assert flow_run["work_pool_name"] == pool
    assert flow_run["parameters"] == parameters  # the run's `warn` wins over the deployment's default

    demo_out = out_dir / "demo"
    result = json.loads((demo_out / "result.json").read_text())
    assert result["offline"] is True
    assert sorted(o["language"] for o in result["outputs"]) == ["de", "es"]
    for language in ("es", "de"):
        video = demo_out / f"demo.{language}.mp4"
        assert video.stat().st_size > 10_000
        report = json.loads((demo_out / f"demo.{language}.mp4.report.json").read_text())
        assert report["verdict"] in {"pass", "warn"} and report["checks"]
        pictures = sorted(demo_out.glob(f"demo.{language}.*.png"))
        assert pictures and all(p.stat().st_size > 1000 for p in pictures)
        (output,) = (o for o in result["outputs"] if o["language"] == language)
        assert output["error"] is None and Path(output["output"]) == video
    lap("outputs checked")

    # Each delivered output started `publish-dub` once, its ref in the run's parameters.
    publish = operator.get("/deployments/name/publish-dub/publish-dub")
    delivered = sorted(o["output"] for o in result["outputs"])

    def publish_runs() -> list[dict[str, Any]]:
        body = {"deployments": {"id": {"any_": [publish["id"]]}}, "limit": 20}
        return list(operator.post("/flow_runs/filter", body))

    runs = wait_for(lambda: len(found := publish_runs()) >= 2 and found, timeout=90, what="publish-dub runs")
    time.sleep(3)  # a third run would be a trigger firing twice
    runs = publish_runs()
    assert sorted(r["parameters"]["output"] for r in runs) == delivered, [r["parameters"] for r in runs]
    assert {r["parameters"]["language"] for r in runs} == {"es", "de"}
    assert all(r["parameters"]["manifest"] == "demo" and r["parameters"]["task_uuid"] for r in runs)
    ran = operator.prefect("worker", "start", "--pool", pool, "--run-once", timeout=300)
    assert ran.returncode == 0, tail(ran)

    def completed() -> list[dict[str, Any]]:
        found = publish_runs()
        return found if all(r["state"]["type"] == "COMPLETED" for r in found) else []

    assert len(wait_for(completed, timeout=60, what="publish-dub runs completed")) == 2
    lap("publish-dub triggered and run")
    print("timings: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()))
