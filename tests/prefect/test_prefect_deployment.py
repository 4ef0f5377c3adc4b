"""The `localize-adhoc` deployment of deployments/prefect.yaml, as an operator runs it: a real
`prefect server start` (SQLite, loopback), a process work pool, `prefect deploy`, `run_deployment` with
parameters, and `prefect worker start --run-once` executing the flow run in its own process.

This module does not use the session `prefect_test_harness` of conftest.py (a harness must not be nested,
and here the server, the CLI and the worker are separate processes, as in production).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prefect_lipsync.demo import build_demo

REPO = Path(__file__).resolve().parents[2]
PREFECT_FILE = REPO / "deployments" / "prefect.yaml"


def adhoc_entry() -> dict[str, Any]:
    """The `localize-adhoc` entry of the real prefect.yaml: what the deployment on the server must match."""
    config = yaml.safe_load(PREFECT_FILE.read_text())
    (entry,) = (d for d in config["deployments"] if d["name"] == "localize-adhoc")
    return dict(entry)


@pytest.fixture(autouse=True)
def prefect_server() -> None:
    """Replaces the session harness of conftest.py for this module: the test starts its own server."""
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy (the integration-test habit: never assert once)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop(proc: subprocess.Popen[Any]) -> None:
    """Terminate, then kill, the process group of `proc` (a worker's flow-run child goes with it)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            continue


class Operator:
    """One operator's shell: a fresh PREFECT_HOME and API URL shared by every command it runs."""

    def __init__(self, home: Path, api_url: str, logs: Path) -> None:
        self.api_url = api_url
        self.logs = logs
        # Nothing of the caller's Prefect profile or Runware key leaks in: the run must be the offline demo.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not (k.startswith("PREFECT_") and not k.startswith("PREFECT_LIPSYNC_"))
            and k != "RUNWARE_API_KEY"
        }
        self.env = {
            **inherited,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "COLUMNS": "200",
        }

    def run(self, command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run `command` in its own process group, which is ended whatever happens."""
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,  # like CI: a prompt fails instead of hanging
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            stop(proc)
        return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)

    def prefect(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`prefect ARGS` run from the repository root, as the prefect.yaml header tells an operator to."""
        done = self.run([sys.executable, "-m", "prefect", *args], cwd=REPO, timeout=timeout)
        words = "-".join(a for a in args[:3] if not a.startswith("-"))
        (self.logs / f"prefect-{words}.log").write_text(done.stdout + done.stderr)
        return done

    def python(self, code: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-c", code, *argv], cwd=self.logs, timeout=timeout)

    def get(self, path: str) -> Any:
        answer = httpx.get(f"{self.api_url}{path}", timeout=30)
        answer.raise_for_status()
        return answer.json()


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def tail(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    """A real `prefect server start` on a free loopback port with SQLite in a fresh PREFECT_HOME."""
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    op = Operator(tmp_path / "prefect-home", f"http://127.0.0.1:{port}/api", logs)
    with (logs / "server.log").open("wb") as server_log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=op.env,
            stdin=subprocess.DEVNULL,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            started = time.monotonic()
            wait_for(
                lambda: server.poll() is not None or healthy(f"{op.api_url}/health"),
                timeout=120,
                what="the Prefect server's /api/health",
            )
            assert server.poll() is None, (logs / "server.log").read_text()[-3000:]
            print(f"server healthy after {time.monotonic() - started:.1f} s")
            yield op
        finally:
            stop(server)


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
    entry = adhoc_entry()
    deployment = operator.get("/deployments/name/localize-video/localize-adhoc")
    assert deployment["entrypoint"] == entry["entrypoint"] == "prefect_lipsync.flows.localize.localize_video"
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
    print("timings: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()))
