"""A night's batch at a realistic size on the default setup: no Prefect server configured, so Prefect
starts its temporary SQLite server, exactly as after `make demo`. 50 two-language manifests = 100 jobs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from batch_script import batch_command, batch_outcome
from infra import seed_prefect_home

from prefect_lipsync.demo import build_batch_inbox

pytestmark = pytest.mark.slow

MANIFESTS = 50


@pytest.fixture(autouse=True)
def prefect_server() -> None:
    """Not the session harness: the batch runs in its own process on Prefect's temporary server."""
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def emulator() -> Iterator[str]:
    """The emulator as its own process, with cheap outputs (one rendering per request shape, linked for
    the others): these tests count jobs, payments and delivered files, not what the renderings show.
    (The 100-job test still used 180 s of CPU so: most of it is the checks and pictures of 100 outputs
    and the temporary server's bookkeeping, not the emulator.)"""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect_lipsync.cli", "emulator", "--port", str(port), "--latency", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PREFECT_LIPSYNC_EMULATOR_CHEAP_OUTPUTS": "1"},
    )
    root = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            httpx.get(f"{root}/_emulator/stats", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield root
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.timeout(1500)
def test_a_batch_of_100_jobs_on_the_default_setup_completes_with_each_job_accepted_once(
    tmp_path: Path, emulator: str
) -> None:
    inbox = tmp_path / "inbox"
    build_batch_inbox(inbox, MANIFESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        PREFECT_HOME=str(seed_prefect_home(tmp_path / "prefect-home")),  # migrated, as after `make demo`
        PREFECT_LIPSYNC_CACHE_DIR=str(tmp_path / "cache"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    done = subprocess.run(
        batch_command(inbox, tmp_path / "out", f"{emulator}/v1", at_once=16),
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    outcome = batch_outcome(done.stdout, done.stderr)
    assert outcome["completed"], outcome["message"]
    assert outcome["done"] == MANIFESTS
    stats = httpx.get(f"{emulator}/_emulator/stats", timeout=5).json()
    assert stats["accepted"] == stats["distinct_task_uuids"] == 2 * MANIFESTS  # each job paid once
    outputs = sorted((tmp_path / "out").glob("night-*/night-*.*.mp4"))
    assert len(outputs) == 2 * MANIFESTS


def test_a_batch_larger_than_the_temporary_server_holds_is_refused_before_anything_is_paid(
    tmp_path: Path, emulator: str
) -> None:
    inbox = tmp_path / "inbox"
    build_batch_inbox(inbox, 2)  # 4 jobs, over a limit of 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        PREFECT_HOME=str(seed_prefect_home(tmp_path / "prefect-home")),
        PREFECT_LIPSYNC_CACHE_DIR=str(tmp_path / "cache"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        PREFECT_LIPSYNC_TEMPORARY_SERVER_MAX_JOBS="3",
    )
    done = subprocess.run(
        batch_command(inbox, tmp_path / "out", f"{emulator}/v1", at_once=16),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcome = batch_outcome(done.stdout, done.stderr)
    assert not outcome["completed"]
    assert "4 jobs" in outcome["message"] and "PREFECT_API_URL" in outcome["message"]
    stats = httpx.get(f"{emulator}/_emulator/stats", timeout=5).json()
    assert stats["accepted"] == 0 and stats["uploads"] == 0
