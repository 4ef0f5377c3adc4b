"""The pinned set runs Prefect's server clean: a real `prefect server start` with the project's
deployments/prefect.yaml deployed gives `localize-nightly` its scheduled runs, and the server's services
(scheduler, late runs, cancellation cleanup, pause expirations, foreman, ...) log no error while they loop.

(SQLAlchemy 2.1.x with Prefect 3.8.8 logged `Can't evaluate bulk DML statement` at every scheduler loop
and scheduled nothing; the pin `sqlalchemy<2.1` is what this guards.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect_operator import PREFECT_FILE, Operator, running_server, tail, wait_for

# Every service loops every second instead of every minute or hour: a quarter of a minute of server
# life covers many loops of each (about as many as 70 s at 5 s loops did).
FAST_SERVICES = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1",
}
SERVER_LIFE_S = 15.0  # seconds of services looping after the server is healthy
PROBLEM = re.compile(r"\bERROR\b|Traceback|CRITICAL|InvalidRequestError|Exception in ")


@pytest.fixture(autouse=True)
def prefect_server() -> None:
    """Replaces the session harness of conftest.py for this module: the test starts its own server."""
    return None


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    with running_server(tmp_path, FAST_SERVICES) as op:
        yield op


def nightly_entry() -> dict[str, Any]:
    config = yaml.safe_load(PREFECT_FILE.read_text())
    (entry,) = (d for d in config["deployments"] if d["name"] == "localize-nightly")
    return dict(entry)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_nightly_deployment_gets_scheduled_runs_and_the_server_logs_no_error(operator: Operator) -> None:
    healthy_at = time.monotonic()
    created = operator.prefect("work-pool", "create", "lipsync", "--type", "process")
    assert created.returncode == 0, tail(created)
    deployed = operator.prefect("--no-prompt", "deploy", "--prefect-file", str(PREFECT_FILE), "--all")
    assert deployed.returncode == 0, tail(deployed)

    deployment = operator.get("/deployments/name/localize-batch/localize-nightly")
    entry = nightly_entry()
    (schedule,) = deployment["schedules"]
    assert schedule["active"] is True
    assert schedule["schedule"]["cron"] == entry["schedules"][0]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == "UTC"
    assert operator.get("/deployments/name/localize-video/localize-adhoc")["schedules"] == []

    def scheduled_runs() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = operator.post(
            "/flow_runs/filter",
            {
                "deployments": {"id": {"any_": [deployment["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": 50,
            },
        )
        return runs

    runs = wait_for(scheduled_runs, timeout=90, what="scheduled runs of localize-nightly", interval=0.5)
    assert len(runs) >= 1
    for run in runs:
        start = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
        assert (start.hour, start.minute, start.second) == (2, 0, 0), run["expected_start_time"]
        assert run["parameters"] == entry["parameters"]
        assert run["work_pool_name"] == "lipsync"

    # Let the services loop for a while on the deployed state before reading the server's log.
    remaining = SERVER_LIFE_S - (time.monotonic() - healthy_at)
    if remaining > 0:
        time.sleep(remaining)
    assert operator.get("/health") is True
    log = (operator.logs / "server.log").read_text(errors="replace")
    problems = [line for line in log.splitlines() if PROBLEM.search(line)]
    assert not problems, "server log:\n" + log[-6000:]
    print(f"{len(runs)} scheduled runs; server log {len(log.splitlines())} lines, no error")
