"""The nightly batch fanned out over a team's Prefect: a server on PostgreSQL, two process workers on
one pool, media, outputs and the runner's shared state in S3 (Moto), the emulator standing in for
Runware. In chunks (`chunk_deployment`: a few flow runs, each many manifests in one process) and the
earlier way (`manifest_deployment`: a flow run per manifest), one after the other on one team setup
(`FanOutCluster`, shared by the two tests as a team's is by its nights). Then chunks with one worker
machine killed in the middle of the batch, on a setup of its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from infra import MotoS3, PostgresCluster, PrefectServer, free_port, migrated_postgres_data, wait_http

from prefect_lipsync.media.synth import make_talking_card, make_tone
from prefect_lipsync.storage import s3_filesystem

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = 8  # the killed-worker batch: four chunks of two, two on each worker
CHUNKS = "localize-manifests/localize-manifests"
PER_MANIFEST = "localize-video/localize-manifest"
BATCH = textwrap.dedent(
    """
    import asyncio, json, sys
    from datetime import datetime, timezone
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter,
        FlowRunFilterExpectedStartTime, FlowRunFilterState, FlowRunFilterStateType, TaskRunFilter,
        TaskRunFilterFlowRunId, TaskRunFilterName)
    from prefect.client.schemas.objects import StateType
    from prefect_lipsync.flows.localize import localize_batch

    async def main():
        fan_out = ({"chunk_deployment": sys.argv[4]} if sys.argv[4].startswith("localize-manifests/")
                   else {"manifest_deployment": sys.argv[4]})
        prefix = sys.argv[5]  # this batch's manifests are <prefix>-N: another batch may have run on the server
        started = datetime.now(timezone.utc)
        state = await localize_batch(folder=sys.argv[1], out_dir=sys.argv[2], pattern="*.yaml",
                                     max_concurrent_manifests=10, base_url=sys.argv[3],
                                     quality_policy="warn", return_state=True, **fan_out)
        result = await state.result(raise_on_failure=False) if state.is_completed() else None
        async with get_client() as client:
            crashed = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CRASHED])),
                expected_start_time=FlowRunFilterExpectedStartTime(after_=started)))
            # Each manifest its own task run under a chunk's flow run (task runs are written from their
            # events, so they may show a moment after the batch ends). A batch fanned out per manifest
            # has no chunk: nothing to wait for (it once waited the whole minute here for nothing).
            chunks = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["localize-manifests"])),
                flow_run_filter=FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(after_=started)))
            manifest_runs = []
            for _ in range(60 if chunks else 0):
                manifest_runs = await client.read_task_runs(task_run_filter=TaskRunFilter(
                    flow_run_id=TaskRunFilterFlowRunId(any_=[c.id for c in chunks]),
                    name=TaskRunFilterName(like_=f"localize-{prefix}-")))
                if len({r.name for r in manifest_runs}) >= len(result.done if result else []):
                    break
                await asyncio.sleep(1)
            flow_runs_before = len(await client.read_flow_runs())
        # The same batch again: what is done is skipped, and no chunk is started for it.
        again = await localize_batch(folder=sys.argv[1], out_dir=sys.argv[2], pattern="*.yaml",
                                     max_concurrent_manifests=10, base_url=sys.argv[3],
                                     quality_policy="warn", **fan_out)
        async with get_client() as client:
            flow_runs_after = len(await client.read_flow_runs())
        print("RESULT " + json.dumps({"completed": state.is_completed(), "message": str(state.message),
                                       "done": len(result.done) if result else 0,
                                       "crashed": [r.state.message for r in crashed],
                                       "chunk_runs": len(chunks),
                                       "manifest_task_runs": sorted({r.name for r in manifest_runs}),
                                       "again": {"done": len(again.done), "skipped": len(again.skipped),
                                                 "failed": len(again.failed)},
                                       "flow_runs_started_again": flow_runs_after - flow_runs_before}))

    asyncio.run(main())
    """
)


def make_inbox(root: Path, bucket: str, manifests: int, prefix: str) -> Path:
    """Two-language manifests <prefix>-N on this disk; their video and Spanish dubs in S3, German dubs on
    the shared disk (uploaded to the service, so an upload repeated by a resume would show)."""
    fs = s3_filesystem()
    media = root / "media"
    video = make_talking_card(media / "source.mp4", duration=2.0, size=(160, 96), tone_hz=180)
    fs.put(str(video), f"{bucket}/media/source.mp4")
    inbox = root / "inbox"
    inbox.mkdir()
    for index in range(manifests):
        languages = {}
        for offset, language in enumerate(("es", "de")):
            dub = make_tone(
                media / f"{index}-{language}.wav", duration=2.0, frequency=220 + 10 * index + offset
            )
            if language == "es":
                fs.put(str(dub), f"{bucket}/media/{index}-{language}.wav")
                languages[language] = {"audio": f"s3://{bucket}/media/{index}-{language}.wav"}
            else:
                languages[language] = {"audio": str(dub)}
        document = {
            "version": 1,
            "name": f"{prefix}-{index}",
            "video": f"s3://{bucket}/media/source.mp4",
            "languages": languages,
        }
        (inbox / f"{prefix}-{index}.yaml").write_text(yaml.safe_dump(document))
    return inbox


@dataclass
class BatchRun:
    outcome: dict[str, object]
    stats: dict[str, object]
    worker_logs: dict[str, str]  # what each worker logged during this batch
    outputs: list[str]  # the video keys under the batch's s3:// out_dir
    uploads_at_kill: int = 0  # uploads the service had received when a worker was killed


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (a worker and the flow runs it started)."""
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [pid, *(p for child in children.split() for p in process_tree(int(child)))]


class FanOutCluster:
    """A team's setup for fanned-out batches: a Prefect server on PostgreSQL, the work pool, the team's
    one-time setup (`team-setup`), both deployments of prefect.yaml, and two process workers, each taking
    at most `worker_limit` flow runs at once (the README's --limit 2 for chunks); the runner's shared
    state in S3. With `api_key` (RUNWARE_API_KEY everywhere, as a team sets it) outputs are real and
    marked done; without, they are dub previews from the emulator, which a re-run does again."""

    def __init__(
        self, root: Path, *, unresponsive_after_s: int, worker_limit: int, api_key: str | None
    ) -> None:
        self.root = root
        self.unresponsive_after_s = unresponsive_after_s
        self.worker_limit = worker_limit
        self.api_key = api_key
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.base_env: dict[str, str] = {}
        self._stack = contextlib.ExitStack()

    def worker_log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def __enter__(self) -> FanOutCluster:
        state_bucket = f"lipsync-state-{uuid.uuid4().hex[:12]}"
        s3_filesystem().mkdir(state_bucket)
        try:
            pg = self._stack.enter_context(PostgresCluster(from_data=migrated_postgres_data()))
            server = self._stack.enter_context(PrefectServer(self.root / "server", database_url=pg.url()))
            self._stack.callback(self._stop_workers)
            self.base_env = {
                **os.environ,
                **server.client_env(),
                "PREFECT_LIPSYNC_STATE_URL": f"s3://{state_bucket}/state",
            }
            self.base_env.pop("RUNWARE_API_KEY", None)
            if self.api_key is not None:
                self.base_env["RUNWARE_API_KEY"] = self.api_key
            deploy = ("prefect", "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml")
            for command in (
                ("prefect", "work-pool", "create", "lipsync-fan", "--type", "process"),
                # The team's one-time setup, as README shows it: unresponsive runs get marked Crashed.
                ("prefect_lipsync.cli", "team-setup", "--unresponsive-after", str(self.unresponsive_after_s)),
                # One deployment at a time: given several names, `prefect deploy` ignores `--pool`.
                (*deploy, "--name", "localize-manifest", "--pool", "lipsync-fan"),
                (*deploy, "--name", "localize-manifests", "--pool", "lipsync-fan"),
            ):
                done = self.run(*command)
                assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            for name in ("w1", "w2"):  # two machines' workers: each its own local cache
                log = self._stack.enter_context(open(self.worker_log(name), "wb"))  # closed after the stop
                env = {
                    **self.base_env,
                    "PREFECT_LIPSYNC_CACHE_DIR": str(self.root / name / "cache"),
                    "PREFECT_LIPSYNC_MEDIA_CACHE_DIR": str(self.root / name / "media"),
                    "PREFECT_WORKER_QUERY_SECONDS": "2",  # as README starts workers
                }
                self.workers[name] = subprocess.Popen(
                    [sys.executable, "-m", "prefect", "worker", "start", "--pool", "lipsync-fan",
                     "--name", name, "--limit", str(self.worker_limit)],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _stop_workers(self) -> None:
        for worker in self.workers.values():
            stop_group(worker)

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *command],
            env=self.base_env, cwd=REPO, capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    def run_batch(
        self,
        tmp_path: Path,
        bucket: str,
        *,
        deployment: str,
        manifests: int,
        prefix: str,
        kill_a_worker: bool = False,
    ) -> BatchRun:
        """The batch over `manifests` manifests named <prefix>-N, fanned out by `deployment` to the two
        workers (w1 killed in the middle with `kill_a_worker`), then the same batch once more."""
        inbox = make_inbox(tmp_path, bucket, manifests, prefix)
        log_start = {name: self.worker_log(name).stat().st_size for name in self.workers}
        emulator_port = free_port()
        emulator = subprocess.Popen(
            [sys.executable, "-m", "prefect_lipsync.cli", "emulator", "--port", str(emulator_port),
             "--latency", "6" if kill_a_worker else "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # One rendering per request shape, linked for the rest: these tests count jobs, uploads and
            # outputs in S3, not what the renderings show.
            env={**os.environ, "PREFECT_LIPSYNC_EMULATOR_CHEAP_OUTPUTS": "1"},
        )  # fmt: skip
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        out_dir = f"s3://{bucket}/outputs"
        try:
            wait_http(f"{emulator_url}/_emulator/stats", timeout_s=120, proc=emulator)
            batch = subprocess.Popen(
                [sys.executable, "-c", BATCH, str(inbox), out_dir, f"{emulator_url}/v1", deployment, prefix],
                env={
                    **self.base_env,
                    "PREFECT_LIPSYNC_CACHE_DIR": str(tmp_path / "batch" / "cache"),
                    "PREFECT_LIPSYNC_MEDIA_CACHE_DIR": str(tmp_path / "batch" / "media"),
                },
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            uploads_at_kill = 0
            if kill_a_worker:
                uploads_at_kill = kill_in_the_middle(self.workers["w1"], self.worker_log("w1"), emulator_url)
            stdout, stderr = batch.communicate(timeout=1200)
        finally:
            if kill_a_worker:  # the batch is over: no worker may touch S3 after it
                self._stop_workers()
            stats = httpx.get(f"{emulator_url}/_emulator/stats", timeout=30).json()
            emulator.terminate()
            try:
                emulator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                emulator.kill()
                emulator.wait(timeout=30)
        outputs = sorted(k for k in s3_filesystem().find(f"{bucket}/outputs") if k.endswith(".mp4"))
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, stdout[-3000:] + stderr[-3000:]
        return BatchRun(
            outcome=json.loads(lines[-1][len("RESULT ") :]),
            stats=stats,
            worker_logs={
                name: self.worker_log(name).read_bytes()[start:].decode(errors="replace")
                for name, start in log_start.items()
            },
            outputs=outputs,
            uploads_at_kill=uploads_at_kill,
        )


def stop_group(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM a worker's process group (it and its flow runs), SIGKILL it if still there after 30 s: on a
    busy machine a worker's graceful stop once took longer than the test waited, and the stop's
    TimeoutExpired hid the batch's own outcome."""
    if worker.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, sig)
        try:
            worker.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


def kill_in_the_middle(worker: subprocess.Popen[bytes], log: Path, emulator_url: str) -> int:
    """SIGKILL a worker and every flow run it started (its machine dies) once it runs manifests and
    some of their jobs were accepted, so paid jobs are in flight on it; returns the uploads the service
    had received by then."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        accepted = httpx.get(f"{emulator_url}/_emulator/stats", timeout=5).json()["accepted"]
        running = flow_runs_started(log.read_text())
        if accepted >= 4 and running >= 1 and len(process_tree(worker.pid)) > 1:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the batch never got going on w1:\n" + log.read_text()[-3000:])
    uploads = int(httpx.get(f"{emulator_url}/_emulator/stats", timeout=5).json()["uploads"])
    for pid in process_tree(worker.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.wait(timeout=30)
    return uploads


def flow_runs_started(log: str) -> int:
    """Flow runs a worker started, each a process. Not its "submitting flow run" lines: two workers
    polling every 2 s both try the same run, and the server aborts one of them ("Aborted submission")."""
    return log.count("submitted to infrastructure")


def assert_every_output_once_and_each_job_paid_once(
    run: BatchRun, bucket: str, manifests: int, prefix: str
) -> None:
    assert run.outcome["completed"] and run.outcome["done"] == manifests, run.outcome["message"]
    assert run.stats["accepted"] == run.stats["distinct_task_uuids"] == 2 * manifests  # each job paid once
    # Each German dub uploaded once (the Spanish ones presigned). Uploads are free and their answer is
    # written to the shared journal when it arrives: a machine that dies between the service taking an
    # upload and that write (seen twice on a loaded machine) leaves it to be sent again, at most once for each
    # upload the service had taken when the machine died.
    uploads = int(str(run.stats["uploads"]))
    assert manifests <= uploads <= manifests + run.uploads_at_kill, (uploads, run.uploads_at_kill)
    expected = {
        f"{bucket}/outputs/{prefix}-{i}/{prefix}-{i}.{language}.mp4"
        for i in range(manifests)
        for language in ("es", "de")
    }
    assert (
        set(run.outputs) == expected
    )  # two outputs a manifest in S3, once each; none in quarantine or staging


@pytest.fixture(scope="module")
def team_setup(moto_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FanOutCluster]:
    """One team's setup for the chunked and the per-manifest batch, as a team runs one night's batch after
    another's: with a key (so the same batch again skips what is done; a re-run that resumes each job is
    the killed-worker test's). Runs that stop answering are marked Crashed only after 300 s: late enough
    for a flow run's process to start beside the suite's other tests (at 60 s a chunk was once marked
    Crashed while still Pending on CI, and run again: six processes where four were asserted)."""
    with FanOutCluster(
        tmp_path_factory.mktemp("team-setup"), unresponsive_after_s=300, worker_limit=2, api_key="team-key"
    ) as cluster:
        yield cluster


@pytest.mark.xdist_group("fan-out-team-setup")
def test_a_dozen_manifests_in_chunks_run_on_both_workers_in_fewer_processes_than_manifests(
    team_setup: FanOutCluster, tmp_path: Path, bucket: str
) -> None:
    # Twelve, three to a chunk: enough for chunks to matter; the batch of a hundred jobs is the size test.
    run = team_setup.run_batch(tmp_path, bucket, deployment=CHUNKS, manifests=12, prefix="chunked")
    assert_every_output_once_and_each_job_paid_once(run, bucket, 12, "chunked")
    started = {name: flow_runs_started(log) for name, log in run.worker_logs.items()}
    assert all(count >= 1 for count in started.values()), started  # every worker of the pool took a chunk
    # Two chunks per online worker: four processes for twelve manifests, none of them run twice.
    assert sum(started.values()) == 4, (started, run.outcome["crashed"])
    # In the UI, each manifest is its own task run (localize-chunked-N) under a chunk's flow run.
    assert run.outcome["manifest_task_runs"] == sorted(f"localize-chunked-{i}" for i in range(12))
    # The same batch again skips every manifest and starts no chunk: its own flow run only.
    assert run.outcome["again"] == {"done": 0, "skipped": 12, "failed": 0}, run.outcome["again"]
    assert run.outcome["flow_runs_started_again"] == 1


@pytest.mark.xdist_group("fan-out-team-setup")
def test_a_batch_fanned_out_per_manifest_still_runs_on_both_workers_and_pays_each_job_once(
    team_setup: FanOutCluster, tmp_path: Path, bucket: str
) -> None:
    # Three manifests, two at a time per worker: one worker cannot take them all.
    run = team_setup.run_batch(tmp_path, bucket, deployment=PER_MANIFEST, manifests=3, prefix="single")
    assert_every_output_once_and_each_job_paid_once(run, bucket, 3, "single")
    assert run.outcome["chunk_runs"] == 0  # a flow run per manifest, no chunk
    assert run.outcome["again"] == {"done": 0, "skipped": 3, "failed": 0}, run.outcome["again"]
    for name, log in run.worker_logs.items():  # every worker of the pool took manifests
        assert flow_runs_started(log) >= 1, name


# 238 s alone; beside other tests on 2 cores it outlasts the default 300 s (heartbeat-driven, 6 s latency).
@pytest.mark.timeout(900)
def test_a_worker_killed_mid_batch_loses_nothing_and_pays_nothing_twice(tmp_path: Path, bucket: str) -> None:
    # A setup of its own: w1 dies, and runs silent for 60 s are marked Crashed so the batch runs them again.
    with FanOutCluster(tmp_path / "setup", unresponsive_after_s=60, worker_limit=2, api_key=None) as cluster:
        run = cluster.run_batch(
            tmp_path, bucket, deployment=CHUNKS, manifests=MANIFESTS, prefix="fan", kill_a_worker=True
        )
    assert_every_output_once_and_each_job_paid_once(run, bucket, MANIFESTS, "fan")
    crashed = run.outcome["crashed"]
    assert crashed and all("No heartbeat" in str(m) for m in crashed), crashed  # marked by the automation
    assert set(run.outcome["manifest_task_runs"]) == {f"localize-fan-{i}" for i in range(MANIFESTS)}
    # Dub previews stay to do: the re-run did every manifest again, on whichever worker, resuming each
    # job from the shared journal (the counts above, taken after it, show nothing paid or uploaded twice).
    assert run.outcome["again"] == {"done": MANIFESTS, "skipped": 0, "failed": 0}, run.outcome["again"]
