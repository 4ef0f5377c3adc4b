"""The nightly batch fanned out over a team's Prefect, against the same batch in one process, on the
same server in the same run: PostgreSQL (started as the tests start it), `prefect server start` on it,
the fan-out deployments of `deployments/prefect.yaml` deployed to a process pool, W process workers
(each with its own caches, as separate machines would have; the journal shared), the emulator at
latency 3 s, N two-language manifests over one shared source, each dub distinct.

    .venv/bin/python bench/bench_fanout.py                          # N = 20, 100, 250; W = 2
    .venv/bin/python bench/bench_fanout.py --sizes 20 --modes in-process per-manifest chunks
    .venv/bin/python bench/bench_fanout.py --sizes 500 --modes chunks --cheap-outputs

Modes: `in-process` (`localize_batch` runs every manifest as a task run in its own process: the
baseline), `per-manifest` (`manifest_deployment`: one flow run, so one process, per manifest: the design
before issue #26) and `chunks` (`chunk_deployment`: a few flow runs of `localize-manifests`, each
running its share of the manifests as task runs in one process). Each mode gets its own out_dir and
rerun_nonce (nothing is resumed) and fresh workers, started and seen online before the clock starts.

Figures: wall time and its ratio to in-process; Prefect API requests (every HTTP request the server
answered while the batch ran, from the batch, the workers and their flow runs: counted in the server's
access log); Python processes the workers started, each a flow run (sampled every 0.2 s); peak memory (resident,
summed over each worker's process tree, ffmpeg included, and over all workers plus the batch);
jobs accepted and distinct task UUIDs at the emulator. `--cheap-outputs` makes the emulator copy one
rendering per request shape (PREFECT_LIPSYNC_EMULATOR_CHEAP_OUTPUTS): the run then measures
orchestration and checks, not the emulator's ffmpeg; the table says which mode ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(
    0, str(REPO / "tests")
)  # tests/infra.py: PostgreSQL and the Prefect server, as the tests run them

POOL = "lipsync-bench"
MAX_CONCURRENT_MANIFESTS = 10
DEPLOYMENTS = {
    "per-manifest": ("localize-manifest", "localize-video/localize-manifest"),
    "chunks": ("localize-manifests", "localize-manifests/localize-manifests"),
}
#: Each worker's --limit: the existing fan-out test's 5 for per-manifest runs (10 manifests at once over
#: 2 workers); 2 for chunks, the README's advice (the batch makes two chunks per online worker).
WORKER_LIMITS = {"per-manifest": 5, "chunks": 2}
#: How often a worker asks for runs to start, as README's team section starts workers (Prefect's
#: default, 10 s, left a chunk waiting 5 s on average before its process started).
WORKER_QUERY_SECONDS = "2"
_REQUEST = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) /api/')
PAGE = os.sysconf("SC_PAGE_SIZE")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the batch (child process)


async def run_batch(args: argparse.Namespace) -> dict[str, Any]:
    from prefect_lipsync.flows.batch import localize_batch

    extra: dict[str, Any] = {}
    if args.mode == "per-manifest":
        extra["manifest_deployment"] = DEPLOYMENTS["per-manifest"][1]
    elif args.mode == "chunks":
        extra["chunk_deployment"] = DEPLOYMENTS["chunks"][1]
    started = time.perf_counter()
    state = await localize_batch(
        folder=args.folder,
        out_dir=args.out,
        pattern="*.yaml",
        max_concurrent_manifests=MAX_CONCURRENT_MANIFESTS,
        base_url=args.base_url,
        quality_policy="warn",
        rerun_nonce=args.nonce,
        return_state=True,
        **extra,
    )
    wall = time.perf_counter() - started
    result = await state.result(raise_on_failure=False) if state.is_completed() else None  # type: ignore[misc]
    return {
        "wall_s": wall,
        "completed": state.is_completed(),
        "message": None if state.is_completed() else str(state.message)[:800],
        "manifests_done": len(result.done) if result is not None else 0,
    }


def child(args: argparse.Namespace) -> int:
    figures = asyncio.run(run_batch(args))
    figures["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(figures), flush=True)
    return 0


# --------------------------------------------------------------------------- watching processes


def _processes() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, command name, resident bytes) of every process now."""
    found: dict[int, tuple[int, str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                resident = int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        found[int(entry)] = (ppid, name, resident)
    return found


def _tree(root: int, table: dict[int, tuple[int, str, int]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


@dataclass
class Watch:
    """Samples the workers' and the batch's process trees until stopped."""

    workers: dict[str, int]
    batch: int | None = None
    started: dict[str, set[int]] = field(default_factory=dict)  # python processes under each worker
    peak_worker_mb: dict[str, float] = field(default_factory=dict)
    peak_total_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        for name in self.workers:
            self.started[name] = set()
            self.peak_worker_mb[name] = 0.0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            table = _processes()
            total = 0
            for name, root in self.workers.items():
                pids = _tree(root, table)
                # A flow run is a Python process the worker starts itself (its own children that show
                # as python are ffmpeg between fork and exec).
                self.started[name].update(
                    p for p in pids if table[p][0] == root and table[p][1].startswith("python")
                )
                mb = sum(table[p][2] for p in pids) / 2**20
                self.peak_worker_mb[name] = max(self.peak_worker_mb[name], mb)
                total += sum(table[p][2] for p in pids)
            if self.batch is not None:
                total += sum(table[p][2] for p in _tree(self.batch, table))
            self.peak_total_mb = max(self.peak_total_mb, total / 2**20)
            self._stop.wait(0.2)


# --------------------------------------------------------------------------- the team's setup


class Team:
    """PostgreSQL, a Prefect server, the pool, the deployments, the emulator: for the whole run."""

    def __init__(self, scratch: Path, latency: float, cheap: bool) -> None:
        self.scratch, self.latency, self.cheap = scratch, latency, cheap
        self.stack = None

    def __enter__(self) -> Team:
        from contextlib import ExitStack

        from infra import PostgresCluster, PrefectServer, free_port, wait_http

        self.stack = ExitStack()
        try:
            port = free_port()
            env = {**os.environ}
            if self.cheap:
                env["PREFECT_LIPSYNC_EMULATOR_CHEAP_OUTPUTS"] = "1"
            self.emulator = subprocess.Popen(
                [sys.executable, "-m", "prefect_lipsync.cli", "emulator", "--port", str(port),
                 "--latency", str(self.latency)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            self.stack.callback(_end, self.emulator)
            self.emulator_url = f"http://127.0.0.1:{port}"
            wait_http(f"{self.emulator_url}/_emulator/stats", timeout_s=60, proc=self.emulator)
            pg = self.stack.enter_context(PostgresCluster())
            self.server = self.stack.enter_context(
                PrefectServer(
                    self.scratch / "server",
                    database_url=pg.url(),
                    extra_env={"PREFECT_SERVER_LOGGING_LEVEL": "INFO"},  # its access log counts requests
                )
            )
            self.env = {
                **os.environ,
                **self.server.client_env(),
                "PREFECT_LIPSYNC_STATE_URL": str(self.scratch / "shared-state"),
            }
            import yaml

            known = {
                d["name"]
                for d in yaml.safe_load((REPO / "deployments/prefect.yaml").read_text())["deployments"]
            }
            deploy = [
                (
                    "prefect",
                    "--no-prompt",
                    "deploy",
                    "--prefect-file",
                    "deployments/prefect.yaml",
                    "--name",
                    name,
                    "--pool",
                    POOL,
                )
                for name, _ in DEPLOYMENTS.values()
                if name in known
            ]  # fmt: skip  (one at a time: with several names, `--pool` is ignored)
            for command in (
                ("prefect", "work-pool", "create", POOL, "--type", "process"),
                ("prefect_lipsync.cli", "team-setup", "--unresponsive-after", "90"),
                *deploy,
            ):  # fmt: skip
                done = subprocess.run(
                    [sys.executable, "-m", *command], env=self.env, cwd=REPO, capture_output=True, text=True,
                    timeout=300,
                )  # fmt: skip
                if done.returncode != 0:
                    raise RuntimeError(f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stack is not None
        self.stack.close()

    def requests_so_far(self) -> int:
        return len(_REQUEST.findall(self.server.log_text()))

    def emulator_stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.emulator_url}/_emulator/stats", timeout=10).json())

    def start_workers(self, count: int, limit: int, home: Path) -> dict[str, subprocess.Popen[bytes]]:
        workers = {}
        for k in range(1, count + 1):
            # The same names in every mode, as a team's machines keep theirs: a worker stopped after the
            # mode before still shows online for a while, and under another name the batch would count it
            # (two chunks per online worker) and make twice the chunks.
            name = f"w{k}"
            log = open(home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            env = {
                **self.env,
                "PREFECT_LIPSYNC_CACHE_DIR": str(home / name / "cache"),
                "PREFECT_LIPSYNC_MEDIA_CACHE_DIR": str(home / name / "media"),
                "PREFECT_WORKER_QUERY_SECONDS": WORKER_QUERY_SECONDS,  # as README starts workers
            }
            workers[name] = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--name", name,
                 "--limit", str(limit)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._wait_online(list(workers))
        return workers

    def _wait_online(self, names: list[str]) -> None:
        """Until each of these workers is online by a heartbeat of its own (not one of the worker of
        the same name in the mode before)."""
        since = datetime.now(UTC)

        async def online() -> set[str]:
            from prefect.client.orchestration import get_client

            async with get_client() as client:
                return {
                    w.name
                    for w in await client.read_workers_for_work_pool(POOL)
                    if str(w.status.value).upper() == "ONLINE"
                    and w.last_heartbeat_time is not None
                    and w.last_heartbeat_time > since
                }

        os.environ.update(self.server.client_env())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if set(names) <= asyncio.run(online()):
                return
            time.sleep(1)
        raise RuntimeError(f"workers {names} never came online")


def _end(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        import signal

        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def measure(team: Team, mode: str, folder: Path, n: int, workers: int, scratch: Path) -> dict[str, Any]:
    home = scratch / f"{mode}-n{n}"
    home.mkdir(parents=True)
    pool = team.start_workers(workers, WORKER_LIMITS[mode], home) if mode != "in-process" else {}
    try:
        watch = Watch({name: p.pid for name, p in pool.items()})
        before_requests = team.requests_so_far()
        before_stats = team.emulator_stats()
        watch.start()
        batch = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, "--folder", str(folder), "--out", str(home / "out"),
             "--base-url", f"{team.emulator_url}/v1", "--nonce", f"bench-{mode}-{n}-{time.time_ns()}"],
            env={**team.env, "PREFECT_LIPSYNC_CACHE_DIR": str(home / "batch-cache"),
                 "PREFECT_LIPSYNC_MEDIA_CACHE_DIR": str(home / "batch-media")},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        watch.batch = batch.pid
        stdout, stderr = batch.communicate(timeout=4 * 3600)
        watch.stop()
        after_stats = team.emulator_stats()
        requests = team.requests_so_far() - before_requests
    finally:
        for proc in pool.values():
            _end(proc)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{mode} N={n} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    figures.update(
        api_requests=requests,
        accepted=after_stats["accepted"] - before_stats["accepted"],
        distinct=after_stats["distinct_task_uuids"] - before_stats["distinct_task_uuids"],
        processes={name: len(pids) for name, pids in watch.started.items()},
        peak_worker_mb={name: round(mb) for name, mb in watch.peak_worker_mb.items()},
        peak_total_mb=round(max(watch.peak_total_mb, figures["peak_rss_mb"])),
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20, 100, 250])
    parser.add_argument("--modes", nargs="*", default=["in-process", "chunks"],
                        choices=["in-process", "per-manifest", "chunks"])  # fmt: skip
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=3.0)
    parser.add_argument(
        "--cheap-outputs", action="store_true", help="The emulator copies one rendering per shape."
    )
    parser.add_argument("--json", help="Also write every figure to this file.")
    parser.add_argument("--child", choices=["in-process", "per-manifest", "chunks"])
    parser.add_argument("--folder")
    parser.add_argument("--out")
    parser.add_argument("--base-url")
    parser.add_argument("--nonce")
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        return child(args)

    from prefect_lipsync.demo import build_batch_inbox

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    scratch = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    rows: list[tuple[int, str, dict[str, Any]]] = []
    try:
        inbox = scratch / "inbox"
        manifests = build_batch_inbox(inbox, max(args.sizes))
        with Team(scratch, args.latency, args.cheap_outputs) as team:
            for n in args.sizes:
                folder = scratch / f"n{n}"
                folder.mkdir()
                (folder / "media").symlink_to(inbox / "media")
                for manifest in manifests[:n]:
                    shutil.copy(manifest, folder / manifest.name)
                for mode in args.modes:
                    figures = measure(team, mode, folder, n, args.workers, scratch)
                    rows.append((n, mode, figures))
                    print(f"N={n} {mode}: {json.dumps(figures)}", flush=True)
                    if args.json:
                        Path(args.json).write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    outputs = "cheap (one rendering per shape, copied)" if args.cheap_outputs else "rendered by ffmpeg"
    print(f"W = {args.workers} process workers, emulator latency {args.latency:g} s, outputs {outputs}, "
          f"{MAX_CONCURRENT_MANIFESTS} manifests at once")  # fmt: skip
    print("| N (jobs) | mode | wall | ratio | Prefect API requests | processes started per worker | "
          "peak memory per worker / total | accepted / distinct | all done |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    base = {n: f["wall_s"] for n, mode, f in rows if mode == "in-process"}
    for n, mode, f in rows:
        ratio = f"{f['wall_s'] / base[n]:.2f}" if n in base else "-"
        ok = f["completed"] and f["manifests_done"] == n and f["accepted"] == f["distinct"] == 2 * n
        processes = " / ".join(str(v) for v in f["processes"].values()) or "-"
        memory = " / ".join(f"{v}" for v in f["peak_worker_mb"].values()) or "-"
        print(
            f"| {n} ({2 * n}) | {mode} | {f['wall_s']:.1f} s | {ratio} | {f['api_requests']} | {processes} "
            f"| {memory} / {f['peak_total_mb']} MB | {f['accepted']} / {f['distinct']} | {'yes' if ok else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
