"""No paid job is lost to the orchestrator: a batch run as a team's script runs it, against a real
Prefect server behind a proxy that answers 503 and 429 and drops connections (tests/prefect/flaky_api.py),
then through an outage of the whole Prefect API after every job was paid for. Every job is accepted
(paid) once, every output is delivered, and a re-run resumes without paying."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from batch_script import batch_command, batch_outcome
from flaky_api import Faults, FlakyApi
from prefect.settings import PREFECT_API_URL

from prefect_lipsync.demo import build_batch_inbox
from prefect_lipsync.emulator import run_emulator

pytestmark = pytest.mark.slow

MANIFESTS = 4
OUTAGE_CALLS = 5  # calls of the batch the outage refuses before it ends


def batch_env(tmp_path: Path, api_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")},
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_LIPSYNC_CACHE_DIR": str(tmp_path / "cache"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def delivered(out: Path) -> list[Path]:
    return sorted(out.glob("night-*/night-*.*.mp4"))


@pytest.mark.timeout(900)
def test_a_busy_prefect_api_costs_the_batch_no_job_and_no_second_payment(tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    build_batch_inbox(inbox, MANIFESTS)
    faults = Faults(busy_rate=0.25, drop_rate=0.05)
    with run_emulator(latency=1.0) as base_url, FlakyApi(str(PREFECT_API_URL.value()), faults) as api:
        done = subprocess.run(
            batch_command(inbox, out, str(base_url), MANIFESTS),
            env=batch_env(tmp_path, api),
            capture_output=True,
            text=True,
            timeout=600,
        )
        stats = base_url.stats()
    outcome = batch_outcome(done.stdout, done.stderr)
    assert outcome["completed"], outcome["message"]
    assert outcome["done"] == MANIFESTS
    # The API really was busy: many of the batch's requests were answered 503/429 or dropped.
    assert faults.counts["503"] + faults.counts["429"] >= 5 and faults.counts["drop"] >= 1, faults.counts
    assert stats["accepted"] == stats["distinct_task_uuids"] == 2 * MANIFESTS  # each job paid once
    assert len(delivered(out)) == 2 * MANIFESTS


@pytest.mark.timeout(900)
def test_jobs_paid_for_before_an_outage_of_the_prefect_api_are_delivered_and_a_rerun_pays_nothing(
    tmp_path: Path,
) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    build_batch_inbox(inbox, MANIFESTS)
    faults = Faults()
    with run_emulator(latency=3.0) as base_url, FlakyApi(str(PREFECT_API_URL.value()), faults) as api:
        env = batch_env(tmp_path, api)
        batch = subprocess.Popen(
            batch_command(inbox, out, str(base_url), MANIFESTS),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        while base_url.stats()["accepted"] < 2 * MANIFESTS:  # every job paid for, none delivered yet
            assert batch.poll() is None, "the batch ended before its jobs were in flight"
            assert time.monotonic() < deadline, "the jobs were never submitted"
            time.sleep(0.2)
        assert not delivered(out)
        faults.outage = True  # the Prefect API is gone while the paid jobs finish
        # It stays gone until every paid job has finished on the service and the batch has met the
        # outage on several calls (not a fixed time: the jobs' 3 s latency is what it has to outlast).
        deadline = time.monotonic() + 120
        while base_url.stats()["finished"] < 2 * MANIFESTS or faults.counts["outage"] < OUTAGE_CALLS:
            assert time.monotonic() < deadline, f"the outage saw {faults.counts}; {base_url.stats()}"
            time.sleep(0.2)
        faults.outage = False
        stdout, stderr = batch.communicate(timeout=600)
        first = base_url.stats()
        outcome = batch_outcome(stdout, stderr)
        assert faults.counts["outage"] >= OUTAGE_CALLS  # the run did call the API during the outage
        assert outcome["completed"], outcome["message"]
        assert len(delivered(out)) == 2 * MANIFESTS
        assert first["accepted"] == first["distinct_task_uuids"] == 2 * MANIFESTS

        # A re-run (previews stay to do, so it runs every manifest again) resumes from the journal.
        again = subprocess.run(
            batch_command(inbox, out, str(base_url), MANIFESTS),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        second = base_url.stats()
    assert batch_outcome(again.stdout, again.stderr)["completed"]
    assert second["accepted"] == first["accepted"] and second["uploads"] == first["uploads"]
    assert len(delivered(out)) == 2 * MANIFESTS
