"""The flows end to end under a real Prefect server, with the emulator over loopback and real ffmpeg."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from infra import run_test_server_database
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, PREFECT_LOCAL_STORAGE_PATH
from pydantic import SecretStr

from prefect_lipsync.blocks import LipsyncSettings, RunwareCredentials
from prefect_lipsync.demo import build_demo
from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.flows.localize import localize_batch, localize_video
from prefect_lipsync.media.probe import probe

pytestmark = pytest.mark.slow

SECRET_KEY = "rw-live-SECRET-7f3a9c1e5b2d4086-unmistakable"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    build_demo(root)
    return root


def copy_demo(demo_root: Path, dest: Path, name: str | None = None, shift: int = 0) -> Path:
    """A fresh copy of the demo (media and manifest) under `dest`, optionally renamed.

    `shift` moves the first line by that many frames: jobs of equal content share one taskUUID
    (and are paid once), so manifests meant as distinct jobs must differ.
    """
    shutil.copytree(demo_root, dest, dirs_exist_ok=True)
    manifest = dest / "manifest.yaml"
    text = manifest.read_text()
    if name:
        text = text.replace("name: demo", f"name: {name}")
    if shift:
        text = text.replace("start: 0.5", f"start: {0.5 + 0.04 * shift:.2f}")
    manifest.write_text(text)
    return manifest


def prefect_env() -> dict[str, str]:
    """The environment a child process needs to report to the test server and share its result storage."""
    return {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_HOME": str(PREFECT_HOME.value()),
        "PREFECT_LOCAL_STORAGE_PATH": str(PREFECT_LOCAL_STORAGE_PATH.value()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def read_artifacts(filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Artifacts from the server's REST API, including those a flow makes outside any task."""
    body = {"limit": 200, "offset": 0, "sort": "KEY_ASC", **filters}
    answer = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    answer.raise_for_status()
    return list(answer.json())


def read_flow_runs(filters: dict[str, Any]) -> list[dict[str, Any]]:
    body = {"limit": 200, "offset": 0, "flow_runs": filters}
    answer = httpx.post(f"{PREFECT_API_URL.value()}/flow_runs/filter", json=body, timeout=30)
    answer.raise_for_status()
    return list(answer.json())


def read_task_runs(flow_run_id: str, *, at_least: int = 15, wait_s: float = 30) -> list[dict[str, Any]]:
    """The task runs of a flow run; the server records them from events, so give it a moment."""
    body = {"limit": 200, "offset": 0, "task_runs": {"flow_run_id": {"any_": [flow_run_id]}}}
    deadline = time.monotonic() + wait_s
    while True:
        answer = httpx.post(f"{PREFECT_API_URL.value()}/task_runs/filter", json=body, timeout=30)
        answer.raise_for_status()
        runs = list(answer.json())
        if len(runs) >= at_least or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def external_emulator(tmp_path: Path) -> Iterator[Any]:
    """`prefect-lipsync emulator` as its own process (it outlives the flow runs it serves)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*options: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect_lipsync.cli", "emulator", "--port", str(port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{root}/_emulator/stats", timeout=1).status_code == 200:
                    return f"{root}/v1"
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("emulator did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def stats(base_url: str) -> dict[str, Any]:
    return dict(httpx.get(base_url.removesuffix("/v1") + "/_emulator/stats", timeout=5).json())


async def test_demo_manifest_offline_gives_one_checked_output_per_language_with_artifacts(
    demo_root: Path, tmp_path: Path
) -> None:
    manifest = copy_demo(demo_root, tmp_path / "demo")
    state = await localize_video(manifest=str(manifest), out_dir=str(tmp_path / "out"), return_state=True)
    assert state.is_completed(), state.message
    result = await state.result()
    assert result.offline is True
    assert sorted(o.language for o in result.outputs) == ["de", "es"]
    source = probe(demo_root / "media" / "source.mp4", cache=None)
    for output in result.outputs:
        assert output.error is None and output.verdict in {"pass", "warn"}
        info = probe(output.output, cache=None)
        assert info.video is not None and source.video is not None
        assert (info.video.width, info.video.height) == (source.video.width, source.video.height)
        assert abs(info.duration - source.duration) < 0.2 and info.has_audio
        report = json.loads(Path(output.report).read_text())
        assert report["verdict"] == output.verdict and report["checks"]
        assert output.pictures and all(Path(p).stat().st_size > 1000 for p in output.pictures)
    artifacts = read_artifacts({"flow_runs": {"id": {"any_": [str(state.state_details.flow_run_id)]}}})
    keys = {a["key"] for a in artifacts}
    assert {
        "lipsync-jobs-demo",
        "lipsync-cost-demo",
        "lipsync-quality-demo-es",
        "lipsync-quality-demo-de",
    } <= keys


async def test_bad_manifest_fails_before_any_upload_or_submit_with_the_planner_message(
    demo_root: Path, tmp_path: Path, prefect_caplog: pytest.LogCaptureFixture
) -> None:
    manifest = copy_demo(demo_root, tmp_path / "bad")
    text = manifest.read_text().replace("end: 5.8", "end: 3.0", 1)  # es/l002 now ends before it starts
    manifest.write_text(text)
    with run_emulator(latency=0.2) as base_url:
        state = await localize_video(
            manifest=str(manifest), out_dir=str(tmp_path / "out"), base_url=str(base_url), return_state=True
        )
        counters = base_url.stats()
    assert state.is_failed()
    assert counters["uploads"] == 0 and counters["accepted"] == 0
    logged = "\n".join(r.getMessage() for r in prefect_caplog.records)
    assert "l002" in logged and "manifest.yaml" in logged


def test_resume_after_sigkill_while_waiting_submits_and_uploads_nothing_again(
    demo_root: Path, tmp_path: Path, external_emulator: Any
) -> None:
    base_url = external_emulator("--latency", "8")
    manifest = copy_demo(demo_root, tmp_path / "resume", name="resume")
    # Line 1 now has no gap to grow into: its audio must be sped up, an audio operation rendered
    # before pre-flight and uploaded once (a resumed run must not upload it again).
    manifest.write_text(
        manifest.read_text().replace("end: 2.9", "end: 2.55").replace("start: 3.4", "start: 2.6")
    )
    command = [
        sys.executable,
        "-m",
        "prefect_lipsync.cli",
        "run",
        str(manifest),
        "--out",
        str(tmp_path / "out"),
        "--base-url",
        base_url,
        "--quality-policy",
        "warn",
    ]
    first = subprocess.Popen(command, env=prefect_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while stats(base_url)["accepted"] < 2:  # both languages submitted: the run is now waiting
        assert first.poll() is None, "the first run ended before its jobs were in flight"
        assert time.monotonic() < deadline, "jobs were never submitted"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    before = stats(base_url)
    second = subprocess.run(command, env=prefect_env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    after = stats(base_url)
    assert after["accepted"] == before["accepted"] == 2
    assert after["uploads"] == before["uploads"]
    assert len(list((tmp_path / "out" / "resume").glob("resume.*.mp4"))) == 2
    result = json.loads((tmp_path / "out" / "resume" / "result.json").read_text())
    assert all(
        any("tempo" in w or "sped up" in w or "truncated" in w for w in o["warnings"])
        for o in result["outputs"]
    )


# 48 s of CPU, but 173 s to 305 s of wall beside the other slow tests on a busy 2-core machine (it
# waits on retries under faults): the 900 s of the other minutes-long tests, not the default 300 s.
@pytest.mark.timeout(900)
async def test_batch_of_five_manifests_under_faults_finishes_with_each_job_accepted_once(
    demo_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    for i in range(5):
        copy_demo(demo_root, folder / f"m{i}", name=f"batch-{i}", shift=i)
    with run_emulator(
        latency=0.5, seed=7, http_error_rate=0.15, drop_rate=0.05, lose_submit_rate=0.2, task_error_rate=0.15
    ) as base_url:
        creds = RunwareCredentials(api_key=SecretStr("batch-test-key"), base_url=str(base_url))
        state = await localize_batch(
            folder=str(folder),
            out_dir=str(tmp_path / "out"),
            pattern="manifest.yaml",
            credentials=creds,
            max_concurrent_manifests=3,
            settings=LipsyncSettings(concurrency=4, max_task_retries=4),
            quality_policy="warn",
            return_state=True,
        )
        counters = base_url.stats()
    assert state.is_completed(), state.message
    result = await state.result()
    assert len(result.done) == 5 and not result.failed
    # The batch shows its own progress (over manifests) and one summary row per manifest; its
    # manifests keep their jobs table and quality reports and leave progress and cost to it.
    batch_run = str(state.state_details.flow_run_id)
    mine = {a["key"]: a for a in read_artifacts({"flow_runs": {"id": {"any_": [batch_run]}}})}
    assert mine["lipsync-batch-progress-inbox"]["data"] == 100.0
    rows = mine["lipsync-batch-inbox"]["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert sorted(Path(r["manifest"]).parent.name for r in rows) == [f"m{i}" for i in range(5)]
    for row in rows:
        languages = dict(part.split(": ") for part in row["languages"].split(", "))
        assert row["status"] == "done" and sorted(languages) == ["de", "es"]
        assert set(languages.values()) <= {"pass", "warn"}
    assert all(float(r["estimated_usd"]) > 0 and "cost_usd" in r for r in rows)  # charged: as reported
    # Each manifest is a task run of the batch's flow run (no subflow run), named after it, with its
    # languages' job task runs inside; its jobs table and quality reports belong to it.
    assert not read_flow_runs({"parent_flow_run_id": {"any_": [batch_run]}})
    manifest_runs = {
        r["name"]: r["id"]
        for r in read_task_runs(batch_run, at_least=20)
        if r["task_key"].startswith("localize_manifest")
    }
    assert sorted(manifest_runs) == [f"localize-m{i}-manifest" for i in range(5)]
    by_task_run = {a["key"]: a["task_run_id"] for a in mine.values()}
    for i in range(5):
        run_id = manifest_runs[f"localize-m{i}-manifest"]
        assert by_task_run[f"lipsync-jobs-batch-{i}"] == run_id
        assert (
            by_task_run[f"lipsync-quality-batch-{i}-es"]
            == by_task_run[f"lipsync-quality-batch-{i}-de"]
            == run_id
        )
    assert not {k for k in mine if k.startswith(("lipsync-cost", "lipsync-progress-"))}
    # Lost answers and retried submits never make a second task: each taskUUID was accepted once.
    # A task the provider failed transiently is resubmitted once per failure, as a new task.
    assert counters["accepted"] == counters["distinct_task_uuids"] == 10 + counters["failed"]
    outputs = sorted((tmp_path / "out").glob("batch-*/batch-*.*.mp4"))
    assert len(outputs) == 10
    again = await localize_batch(
        folder=str(folder), out_dir=str(tmp_path / "out"), pattern="manifest.yaml", allow_emulator=False
    )
    assert len(again.skipped) == 5 and not again.done  # done manifests need no endpoint at all


async def test_batch_refuses_manifests_that_would_write_to_the_same_folder(
    demo_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    copy_demo(demo_root, folder / "a", name="same")
    copy_demo(demo_root, folder / "b", name="same", shift=1)
    state = await localize_batch(
        folder=str(folder), out_dir=str(tmp_path / "out"), pattern="manifest.yaml", return_state=True
    )
    assert state.is_failed() and "give each a distinct `name:`" in str(state.message)
    assert not (tmp_path / "out" / "same").exists()


async def test_nightly_style_run_without_a_key_fails_instead_of_making_previews(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    monkeypatch.delenv("RUNWARE_BASE_URL", raising=False)
    copy_demo(demo_root, tmp_path / "inbox" / "m", name="nokey")
    state = await localize_batch(
        folder=str(tmp_path / "inbox"),
        out_dir=str(tmp_path / "out"),
        pattern="manifest.yaml",
        allow_emulator=False,
        return_state=True,
    )
    assert state.is_failed() and "does not allow the local emulator" in str(state.message)
    assert not (tmp_path / "out" / "nokey").exists()


async def test_api_key_appears_nowhere_in_logs_artifacts_results_or_database(
    demo_root: Path, tmp_path: Path, prefect_caplog: pytest.LogCaptureFixture
) -> None:
    manifest = copy_demo(demo_root, tmp_path / "secret", name="secret")
    with run_emulator(latency=0.3, api_key=SECRET_KEY) as base_url:
        creds = RunwareCredentials(api_key=SecretStr(SECRET_KEY), base_url=str(base_url))
        state = await localize_video(
            manifest=str(manifest), out_dir=str(tmp_path / "out"), credentials=creds, return_state=True
        )
    assert state.is_completed(), state.message
    # Every log and event the run made is on the server before it is searched (drained, not slept on).
    await APILogWorker.drain_all(timeout=60)
    await EventsWorker.drain_all(timeout=60)
    logged = "\n".join(r.getMessage() for r in prefect_caplog.records)
    assert SECRET_KEY not in logged
    flow_run_id = state.state_details.flow_run_id
    async with get_client() as client:  # this run's (the server is the whole test run's)
        run_logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=0
        )
        flow_run = await client.read_flow_run(flow_run_id)
    artifacts = read_artifacts({"flow_runs": {"id": {"any_": [str(flow_run_id)]}}})
    assert run_logs  # its logs are there to search
    assert SECRET_KEY not in json.dumps([log.message for log in run_logs])
    assert artifacts and SECRET_KEY not in json.dumps(artifacts)
    assert SECRET_KEY not in json.dumps(flow_run.model_dump(mode="json"))
    home = Path(str(PREFECT_HOME.value()))
    needle = SECRET_KEY.encode()
    for path in [*home.rglob("*"), *Path(str(PREFECT_LOCAL_STORAGE_PATH.value())).rglob("*")]:
        if path.is_file():
            assert needle not in path.read_bytes(), f"the key leaked into {path}"
    for db in [*home.rglob("*.db"), run_test_server_database()]:  # the client's and the server's
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            dump = "\n".join(conn.iterdump())
        assert SECRET_KEY not in dump
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes()
