"""Running a user's script as a team does, and reading what the Prefect server recorded of it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from infra import PrefectServer

REPO = Path(__file__).parents[2]


def run_script(
    script: Path, *args: str, server: PrefectServer, emulator: str, cache: Path, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """A user's script in its own process: the server's API, the emulator's URL, no API key."""
    env = {
        **os.environ,
        **server.client_env(),
        "RUNWARE_BASE_URL": emulator,
        "PREFECT_LIPSYNC_CACHE_DIR": str(cache),
    }
    env.pop("RUNWARE_API_KEY", None)
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=script.parent,
    )


def api(server: PrefectServer, route: str, body: dict[str, Any]) -> Any:
    answer = httpx.post(f"{server.api_url}{route}", json=body, timeout=30)
    answer.raise_for_status()
    return answer.json()


def flow_run_of(server: PrefectServer, flow_name: str) -> list[dict[str, Any]]:
    """The flow runs of the flow named `flow_name`, newest first."""
    return list(
        api(
            server,
            "/flow_runs/filter",
            {"flows": {"name": {"any_": [flow_name]}}, "sort": "EXPECTED_START_TIME_DESC", "limit": 50},
        )
    )


def task_run_names(
    server: PrefectServer, flow_run_id: str, *, at_least: int, wait_s: float = 30
) -> list[str]:
    """The names of a flow run's task runs; the server records them from events, so give it a moment."""
    deadline = time.monotonic() + wait_s
    while True:
        runs = api(
            server, "/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
        )
        if len(runs) >= at_least or time.monotonic() > deadline:
            return sorted(r["name"] for r in runs)
        time.sleep(0.5)
