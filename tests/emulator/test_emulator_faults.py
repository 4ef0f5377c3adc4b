"""Injected faults: at the configured rates, seeded and reproducible, only on /v1 POSTs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_lipsync.emulator import run_emulator

AUTH = {"Authorization": "Bearer k"}


def outcomes(base_url: str, count: int) -> list[str]:
    """What `count` polls of an unknown task get: an HTTP status (with marks) or 'dropped'."""
    seen = []
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            try:
                answer = client.post(
                    base_url, json=[{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}], headers=AUTH
                )
            except httpx.TransportError:
                seen.append("dropped")
                continue
            mark = str(answer.status_code)
            if "retry-after" in answer.headers:
                mark += "+retry-after"
            if answer.headers.get("content-type", "").startswith("text/html"):
                mark += "+html"
            seen.append(mark)
    return seen


def test_http_errors_hit_about_their_share_with_every_kind_and_reproducibly() -> None:
    runs = []
    for _ in range(2):
        with run_emulator(http_error_rate=0.4, seed=11) as base_url:
            runs.append(outcomes(base_url, 80))
            stats = base_url.stats()
        faults = [o for o in runs[-1] if not o.startswith("404")]
        assert stats["faults"]["http_errors"] == len(faults)
    assert runs[0] == runs[1]  # same seed, same answers
    faults = [o for o in runs[0] if not o.startswith("404")]
    assert 0.25 * 80 <= len(faults) <= 0.55 * 80
    statuses = {o.split("+")[0] for o in faults}
    assert statuses == {"429", "500", "503", "504"}
    assert any("retry-after" in o for o in faults)
    assert any("html" in o for o in faults) and any(o.startswith("5") and "html" not in o for o in faults)


def test_another_seed_gives_other_answers() -> None:
    with run_emulator(http_error_rate=0.4, seed=1) as a, run_emulator(http_error_rate=0.4, seed=2) as b:
        assert outcomes(a, 40) != outcomes(b, 40)


def test_dropped_connections_get_no_answer() -> None:
    with run_emulator(drop_rate=0.5, seed=5) as base_url:
        seen = outcomes(base_url, 40)
        stats = base_url.stats()
    assert seen.count("dropped") == stats["faults"]["drops"]
    assert 10 <= seen.count("dropped") <= 30
    assert set(seen) == {"dropped", "404"}


def test_faults_do_not_touch_the_stats_endpoint() -> None:
    with run_emulator(drop_rate=1.0, http_error_rate=1.0) as base_url:
        assert outcomes(base_url, 3) == ["dropped"] * 3
        assert httpx.get(f"{base_url.root_url}/_emulator/stats", timeout=5).json()["http_requests"] == 3


def test_a_lost_submit_was_accepted_and_a_resubmit_conflicts(card: Path, emulator: Any) -> None:
    api = emulator(lose_submit_rate=1.0, seed=2, latency=0)
    video = api.upload(card)["mediaUUID"]  # uploads are never lost
    lost_kinds = set()
    for i in range(6):
        task = {
            "taskType": "videoInference",
            "taskUUID": str(uuid.uuid4()),
            "model": "sync:3@0",
            "inputs": {"video": video},
            "speech": {"text": str(i)},
        }
        try:
            answer = api.http.post(api.url, json=[task], headers=AUTH)
            assert answer.status_code == 502
            lost_kinds.add("5xx")
        except httpx.TransportError:
            lost_kinds.add("dropped")
        assert api.poll(task["taskUUID"]).json()["data"][0]["status"] == "success"
        again = api.http.post(api.url, json=[task], headers=AUTH)
        assert again.status_code == 400 and again.json()["errors"][0]["code"] == "conflictTaskUUID"
    assert lost_kinds == {"5xx", "dropped"}
    stats = api.stats()
    assert stats["accepted"] == 6 and stats["faults"]["lost_submits"] == 6


def test_task_errors_hit_about_their_share_reproducibly(card: Path, emulator: Any) -> None:
    counts = []
    for _ in range(2):
        api = emulator(task_error_rate=0.3, seed=9, latency=0)
        video = api.upload(card)["mediaUUID"]
        uuids = [
            api.submit(inputs={"video": video}, speech={"text": str(i)}).json()["data"][0]["taskUUID"]
            for i in range(30)
        ]
        body = api.poll(*uuids).json()
        failed = sorted(
            uuids.index(e["taskUUID"])
            for e in [*body.get("errors", []), *(d for d in body["data"] if d["status"] == "error")]
        )
        counts.append(failed)
        assert api.stats()["failed"] == len(failed)
    assert counts[0] == counts[1]
    assert 3 <= len(counts[0]) <= 16


def test_slow_answers_wait_the_configured_delay() -> None:
    with run_emulator(slow_rate=1.0, slow_seconds=0.4) as base_url:
        started = time.monotonic()
        outcomes(base_url, 1)
        assert time.monotonic() - started >= 0.4
        assert base_url.stats()["faults"]["slow"] == 1


def test_rate_limit_answers_429_with_retry_after() -> None:
    with run_emulator(rate_limit_per_second=3) as base_url:
        seen = outcomes(base_url, 5)
    assert seen[:3] == ["404"] * 3
    assert seen[3:] == ["429+retry-after"] * 2


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rates_outside_zero_to_one_are_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="drop_rate"), run_emulator(drop_rate=rate):
        pass
