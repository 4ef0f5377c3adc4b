"""Real servers for the integration tests, each on loopback, in a temp dir, stopped by its context manager.

- `MotoS3`: Moto's standalone S3-compatible server (`moto_server`, PyPI `moto[server]`) in its own
  process. The project reaches it only through the S3 API, with the AWS_* variables of `env()`,
  exactly as it would reach AWS.
- `PostgresCluster`: Debian's `postgresql` binaries (`initdb`, `pg_ctl`) on a fresh cluster, or on a
  copy of `migrated_postgres_data()` (Prefect's tables made once per run); as root it runs them as
  the `postgres` system user, since initdb refuses root.
- `PrefectServer`: `prefect server start` in its own process with its own PREFECT_HOME, on a
  given database URL (SQLite by default, or a `PostgresCluster`'s).
- `migrated_prefect_db()` / `seed_prefect_home()`: a Prefect server's first start on a new SQLite file
  spends ~6 s of CPU on migrations (10 s in all, 4 s on a migrated file), and the suite starts over
  twenty. The migrations run once per test run; each server starts on a copy.
- `run_test_server()` / `using_run_test_server()`: the one test server of the whole run (all xdist
  workers), what the in-process flow tests talk to; the run's controller stops it.

Import from a conftest after `sys.path.insert(0, <tests dir>)` (pytest runs with --import-mode=importlib).
"""

from __future__ import annotations

import contextlib
import glob
import inspect
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"
TEST_AWS_KEY_ID = "testing-key-id"
TEST_AWS_SECRET = "testing-secret-key-not-real"  # Moto accepts any pair; tests check it never leaks
TEST_REGION = "us-east-1"


def free_port() -> int:
    """A port free on loopback now (bound to 0, then released for the server to take)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_http(
    url: str, *, timeout_s: float, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Poll `url` until it answers below 500, or fail with the server's log tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}:\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"no answer from {url} within {timeout_s:.0f} s:\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM the process group it leads, then SIGKILL what is left after `timeout_s`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)


def _venv_bin(name: str) -> str:
    """A console script of the interpreter running the tests (the project's .venv)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: pip install -c constraints.txt -e '.[dev]'")
    return found


# ---------------------------------------------------------------------------------------- S3


class MotoS3:
    """Moto's S3 server on a free loopback port; `env()` is what a process needs to use it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self.log = workdir / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": TEST_AWS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": TEST_AWS_SECRET,
            "AWS_DEFAULT_REGION": TEST_REGION,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",  # no credential look-up off loopback
        }

    def __enter__(self) -> MotoS3:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [_venv_bin("moto_server"), "-H", LOOPBACK, "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_http(f"{self.endpoint}/moto-api/", timeout_s=60, proc=self.proc, log=self.log)
        except BaseException:
            _stop(self.proc)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def reset(self) -> None:
        """Drop every bucket and object (Moto's own reset endpoint)."""
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=10.0).raise_for_status()


# ---------------------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path | None:
    """Where Debian's `postgresql` package put initdb and pg_ctl (the newest major version), or PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster: initdb in a temp dir, pg_ctl start on a free loopback port.

    Authentication is `trust` and the server listens on 127.0.0.1 only: a test database, never a
    team's. `url("postgresql+asyncpg")` is what Prefect's PREFECT_API_DATABASE_CONNECTION_URL takes.
    With `from_data`, the cluster starts on a copy of that stopped cluster's data directory instead
    (`migrated_postgres_data()`: Prefect's tables already there) and skips initdb and createdb.
    """

    USER = "prefect"
    DATABASE = "prefect"

    def __init__(self, *, from_data: Path | None = None) -> None:
        self.from_data = from_data
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL is not installed: apt-get install -y postgresql (scripts/setup.sh does)"
            )
        self.bin = bin_dir
        self.port = free_port()
        self.root: Path | None = None
        self._run_as: list[str] = []

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def url(self, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{self.USER}@{LOOPBACK}:{self.port}/{self.DATABASE}"

    def _cmd(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self._run_as, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{_tail(self.log)}"
            )
        return done

    def __enter__(self) -> PostgresCluster:
        # Not under pytest's tmp dir: its parents are private to root, and the server may run as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="prefect-lipsync-pg-"))
        if os.geteuid() == 0:  # initdb refuses to run as root
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        try:
            if self.from_data is not None:
                _copy_keeping_owner(self.from_data, self.data)
            else:
                self._cmd(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.USER, "--auth=trust",
                          "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip
            options = f"-p {self.port} -c listen_addresses={LOOPBACK} -k {self.root} -c fsync=off -c max_connections=200"
            self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                      "-w", "-t", "60", "start")  # fmt: skip
            if self.from_data is not None:
                return self
            self._cmd(
                str(self.bin / "createdb"),
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                self.USER,
                self.DATABASE,
            )
        except BaseException:
            self.__exit__()
            raise
        return self

    def stop(self) -> None:
        """Stop the server cleanly, leaving the data directory (a consistent copy can be taken of it)."""
        if self.root is not None and (self.data / "postmaster.pid").exists():
            self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def __exit__(self, *exc: object) -> None:
        if self.root is None:
            return
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


# ---------------------------------------------------------------------------------------- Prefect


class PrefectServer:
    """`prefect server start` on a free loopback port, with its own PREFECT_HOME and database."""

    def __init__(
        self, home: Path, *, database_url: str | None = None, extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.home = home
        self.port = free_port()
        self.api_url = f"http://{LOOPBACK}:{self.port}/api"
        self.log = home / "server.log"
        self.database_url = database_url
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def client_env(self) -> dict[str, str]:
        """The environment a flow-running process needs to talk to this server."""
        return {
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.home / "client"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }

    def server_env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            **self.extra_env,
        }
        env.pop("PREFECT_API_URL", None)
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        return env

    def __enter__(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            seed_prefect_home(self.home)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [_venv_bin("prefect"), "server", "start", "--host", LOOPBACK, "--port", str(self.port)],
                env=self.server_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_http(f"{self.api_url}/health", timeout_s=180, proc=self.proc, log=self.log)
        except BaseException:
            _stop(self.proc)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc, timeout_s=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# ---------------------------------------------------------------------------------------- Prefect's database

#: A folder the whole test run shares (the xdist workers too): tests/conftest.py makes it.
TEST_RUN_DIR_ENV = "PREFECT_LIPSYNC_TEST_RUN_DIR"


def _made_once_per_run(name: str, make: Callable[[Path], None]) -> Path:
    """`<run dir>/name`, made by `make(path)` in the first process of the test run to ask for it; the
    others (xdist workers too) wait on a file lock, then use what it made."""
    import fcntl

    # Never a shared folder such as /tmp: something made by another Prefect version would be reused.
    run_dir = Path(os.environ[TEST_RUN_DIR_ENV])
    made = run_dir / name
    with open(run_dir / f"{name}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            make(made)
        return made


def _migrate_prefect_database(url: str, home: Path) -> None:
    """`prefect server database upgrade` of the database at `url` to the installed Prefect's head."""
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_DATABASE_CONNECTION_URL": url}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [_venv_bin("prefect"), "--no-prompt", "server", "database", "upgrade", "-y"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"prefect server database upgrade failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def migrated_prefect_db() -> Path:
    """A SQLite Prefect database migrated to the installed Prefect's head, made once per test run."""

    def make(made: Path) -> None:
        work = Path(tempfile.mkdtemp(prefix="prefect-migrate-", dir=made.parent))
        database = work / "prefect.db"
        _migrate_prefect_database(f"sqlite+aiosqlite:///{database}", work)
        if not database.exists():
            raise RuntimeError(f"prefect server database upgrade made no {database}")
        # One self-contained file: fold the write-ahead log in before it is copied.
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.replace(database, made)
        shutil.rmtree(work, ignore_errors=True)

    return _made_once_per_run("prefect-migrated.db", make)


def _copy_keeping_owner(source: Path, dest: Path) -> None:
    """`cp -a` as this process's user: a cluster's data directory keeps its owner (postgres, when the
    tests run as root) and its 0700 mode, which the server insists on."""
    done = subprocess.run(["cp", "-a", str(source), str(dest)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"cp -a {source} {dest} failed: {done.stderr}")


def migrated_postgres_data() -> Path:
    """A stopped PostgreSQL cluster's data directory whose `prefect` database is migrated to head, made
    once per test run like `migrated_prefect_db` (initdb and Prefect's migrations on PostgreSQL took
    5 s per cluster here; a copy starts in 0.2 s). `PostgresCluster(from_data=...)` starts on a copy.
    The test of a server's first start on PostgreSQL starts on a new cluster."""

    def make(made: Path) -> None:
        with PostgresCluster() as pg:
            _migrate_prefect_database(pg.url(), made.parent / "postgres-migrate-home")
            pg.stop()
            partial = made.with_name(made.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)  # an earlier attempt of this run that died midway
            _copy_keeping_owner(pg.data, partial)
            os.replace(partial, made)

    return _made_once_per_run("postgres-migrated", make)


def seed_prefect_home(home: Path) -> Path:
    """`home` as a PREFECT_HOME whose default SQLite database (`prefect.db`, what `prefect server start`
    and Prefect's temporary server open) is already migrated, as on any start after a machine's first."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "prefect.db").exists():
        shutil.copyfile(migrated_prefect_db(), home / "prefect.db")
    return home


#: The run's one test server (`run_test_server`): its folder under the run dir, and the files in it.
RUN_SERVER = "prefect-test-server"
RUN_SERVER_DB = "prefect-test.db"


def run_test_server(server_startup_timeout: int = 120) -> str:
    """The API URL of one Prefect test server for the whole run, started by the first process to ask
    (an xdist worker) and stopped by the run's controller (`stop_run_test_server`).

    It is what `prefect_test_harness` starts (the temporary server's own command: uvicorn on Prefect's
    app, ephemeral, no UI) on a copy of the migrated database, but once, not once per worker: each idle
    server costs about 1.6 s of CPU a minute and 4 s to start, and the suite is CPU-bound on two cores.
    Tests on it share nothing but the server: each its own flows' runs, names with a uuid where a name is
    global (blocks, work pools), and filters by flow run or tag, never "the latest run"."""

    def start(made: Path) -> None:
        import prefect

        made.mkdir()
        shutil.copyfile(migrated_prefect_db(), made / RUN_SERVER_DB)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")},
            "PREFECT_HOME": str(made / "home"),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{made / RUN_SERVER_DB}",
            "PREFECT_API_SERVICES_TRIGGERS_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",  # as Prefect starts its temporary server
            "PREFECT__SERVER_FINAL": "1",
        }
        log = made / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                 "--factory", "prefect.server.api.server:create_app", "--host", LOOPBACK, "--port", str(port),
                 "--log-level", "error", "--lifespan", "on"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the worker that started it; the controller stops it
            )  # fmt: skip
        (made / "pid").write_text(str(proc.pid))
        api_url = f"http://{LOOPBACK}:{port}/api"
        wait_http(f"{api_url}/health", timeout_s=server_startup_timeout, proc=proc, log=log)
        (made / "url").write_text(api_url)  # last: a folder without it is a start that failed

    made = _made_once_per_run(RUN_SERVER, start)
    url = made / "url"
    if not url.exists():
        raise RuntimeError(f"the run's test server did not start:\n{_tail(made / 'server.log')}")
    return url.read_text()


def run_test_server_database() -> Path:
    """The SQLite file behind the run's test server (for tests that search what the server stored)."""
    return Path(os.environ[TEST_RUN_DIR_ENV]) / RUN_SERVER / RUN_SERVER_DB


def stop_run_test_server() -> None:
    """Stop the run's test server, if a test started one (the controller calls this at the run's end)."""
    pid_file = Path(os.environ[TEST_RUN_DIR_ENV]) / RUN_SERVER / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (a run without xdist)
                    return
            time.sleep(0.1)


@contextlib.contextmanager
def using_run_test_server(server_startup_timeout: int = 120) -> Iterator[None]:
    """This process's flows and clients talk to the run's test server (`run_test_server`), as inside
    `prefect_test_harness`; on the way out, logs and events are sent before anything else stops."""
    import prefect.context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.utilities.asyncutils import run_coro_as_sync

    url = run_test_server(server_startup_timeout)
    with contextlib.ExitStack() as stack:
        stack.enter_context(temporary_settings({PREFECT_API_URL: url}))
        # As the harness does: code in a context copied before this (a loop made at collection) uses it too.
        stack.enter_context(
            prefect.context._temporary_global_settings_context(prefect.context.get_settings_context())
        )
        yield

        async def drain() -> None:
            with contextlib.suppress(RuntimeError):  # the log worker never started
                logs = APILogWorker.instance().drain()
                if inspect.isawaitable(logs):
                    await logs
            events = EventsWorker.drain_all()
            if inspect.isawaitable(events):
                await events

        run_coro_as_sync(drain())


@contextlib.contextmanager
def environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the block, restoring the old values after."""
    old = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------------------------------- media


@dataclass(frozen=True)
class TinyMedia:
    video: Path  # 2 s, 160x90, 25 fps H.264 with an AAC tone
    dub: Path  # 2 s of tone, WAV: a whole-track dub
    line: Path  # 0.8 s of tone, WAV: one script line


def make_tiny_media(root: Path) -> TinyMedia:
    """Real media made by ffmpeg in well under a second."""
    from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg

    video, dub, line = root / "promo.mp4", root / "es.wav", root / "l1.wav"
    run_ffmpeg(
        ["-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2:sample_rate=48000",
         "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(video)]
    )  # fmt: skip
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=2:sample_rate=44100", str(dub)])
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=frequency=500:duration=0.8:sample_rate=44100", str(line)])
    return TinyMedia(video, dub, line)
