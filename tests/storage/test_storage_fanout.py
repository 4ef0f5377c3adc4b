"""The nightly batch fanned out over a team's Prefect: a server on PostgreSQL, two process workers on
one pool, media and the runner's shared state in S3 (Moto), the emulator standing in for Runware."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml
from infra import PostgresCluster, PrefectServer, free_port

from prefect_lipsync.media.synth import make_talking_card, make_tone
from prefect_lipsync.storage import s3_filesystem

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = 10
BATCH = textwrap.dedent(
    """
    import asyncio, json, sys
    from prefect_lipsync.flows.localize import localize_batch

    state = asyncio.run(localize_batch(folder=sys.argv[1], out_dir=sys.argv[2], pattern="*.yaml",
                                       manifest_deployment="localize-video/localize-manifest",
                                       max_concurrent_manifests=10, base_url=sys.argv[3],
                                       quality_policy="warn", return_state=True))
    result = state.result(raise_on_failure=False) if state.is_completed() else None
    result = asyncio.run(result) if asyncio.iscoroutine(result) else result
    print("RESULT " + json.dumps({"completed": state.is_completed(), "message": str(state.message),
                                   "done": len(result.done) if result else 0}))
    """
)


def make_inbox(root: Path, bucket: str) -> Path:
    """Ten two-language manifests on this disk; their video and dubs in S3."""
    fs = s3_filesystem()
    media = root / "media"
    video = make_talking_card(media / "source.mp4", duration=2.0, size=(160, 96), tone_hz=180)
    fs.put(str(video), f"{bucket}/media/source.mp4")
    inbox = root / "inbox"
    inbox.mkdir()
    for index in range(MANIFESTS):
        languages = {}
        for offset, language in enumerate(("es", "de")):
            dub = make_tone(
                media / f"{index}-{language}.wav", duration=2.0, frequency=220 + 10 * index + offset
            )
            fs.put(str(dub), f"{bucket}/media/{index}-{language}.wav")
            languages[language] = {"audio": f"s3://{bucket}/media/{index}-{language}.wav"}
        document = {
            "version": 1,
            "name": f"fan-{index}",
            "video": f"s3://{bucket}/media/source.mp4",
            "languages": languages,
        }
        (inbox / f"fan-{index}.yaml").write_text(yaml.safe_dump(document))
    return inbox


def test_a_fanned_out_batch_runs_on_both_workers_and_pays_each_job_once(tmp_path: Path, bucket: str) -> None:
    inbox = make_inbox(tmp_path, bucket)
    emulator_port = free_port()
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect_lipsync.cli",
            "emulator",
            "--port",
            str(emulator_port),
            "--latency",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    workers: list[subprocess.Popen[bytes]] = []
    with PostgresCluster() as pg, PrefectServer(tmp_path / "server", database_url=pg.url()) as server:
        base_env = {**os.environ, **server.client_env(), "PREFECT_LIPSYNC_STATE_URL": f"s3://{bucket}/state"}

        def prefect(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "prefect", *args],
                env=base_env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=180,
            )

        try:
            created = prefect("work-pool", "create", "lipsync-fan", "--type", "process")
            assert created.returncode == 0, created.stdout + created.stderr
            deployed = prefect(
                "--no-prompt",
                "deploy",
                "--prefect-file",
                "deployments/prefect.yaml",
                "--name",
                "localize-manifest",
                "--pool",
                "lipsync-fan",
            )
            assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
            for name in ("w1", "w2"):  # two machines' workers: each its own local cache
                log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
                env = {
                    **base_env,
                    "PREFECT_LIPSYNC_CACHE_DIR": str(tmp_path / name / "cache"),
                    "PREFECT_LIPSYNC_MEDIA_CACHE_DIR": str(tmp_path / name / "media"),
                }
                workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "prefect",
                            "worker",
                            "start",
                            "--pool",
                            "lipsync-fan",
                            "--name",
                            name,
                            "--limit",
                            "5",
                        ],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            done = subprocess.run(
                [sys.executable, "-c", BATCH, str(inbox), str(tmp_path / "out"), f"{emulator_url}/v1"],
                env={**base_env, "PREFECT_LIPSYNC_CACHE_DIR": str(tmp_path / "batch" / "cache")},
                capture_output=True,
                text=True,
                timeout=1200,
            )
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
            stats = httpx.get(f"{emulator_url}/_emulator/stats", timeout=5).json()
            emulator.terminate()
            emulator.wait(timeout=10)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    outcome = json.loads(lines[-1][len("RESULT ") :])
    assert outcome["completed"] and outcome["done"] == MANIFESTS, outcome["message"]
    assert stats["accepted"] == stats["distinct_task_uuids"] == 2 * MANIFESTS  # each job paid once
    assert len(list((tmp_path / "out").glob("fan-*/fan-*.*.mp4"))) == 2 * MANIFESTS
    for name in ("w1", "w2"):  # every worker of the pool took manifests
        assert "submitting flow run" in (tmp_path / f"{name}.log").read_text().lower() or (
            "Submitting flow run" in (tmp_path / f"{name}.log").read_text()
        ), name
