"""An operator's shell around a real `prefect server start`: shared by the tests that run Prefect as
separate processes (server, CLI, worker), as in production.

Named `prefect_operator`, not `operator`: tests/prefect is put first on sys.path (conftest.py), where an
`operator.py` would shadow the standard library's module of that name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
from infra import seed_prefect_home

REPO = Path(__file__).resolve().parents[2]
PREFECT_FILE = REPO / "deployments" / "prefect.yaml"


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

    def post(self, path: str, body: Any) -> Any:
        answer = httpx.post(f"{self.api_url}{path}", json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def tail(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@contextlib.contextmanager
def running_server(workdir: Path, settings: Mapping[str, str] | None = None) -> Iterator[Operator]:
    """A real `prefect server start` on a free loopback port, SQLite in a fresh PREFECT_HOME under
    `workdir` (its database already migrated: `infra.seed_prefect_home`); its output goes to `<workdir>/logs/server.log`. `settings` are extra PREFECT_* variables
    of the server process (e.g. shorter service loops)."""
    port = free_port()
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    op = Operator(seed_prefect_home(workdir / "prefect-home"), f"http://127.0.0.1:{port}/api", logs)
    with (logs / "server.log").open("wb") as server_log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env={**op.env, **(settings or {})},
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
