"""A team's Prefect: `prefect server start` on PostgreSQL runs flows, keeps results on S3, and its services stay clean."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from infra import MotoS3, PostgresCluster, PrefectServer

from prefect_lipsync.storage import s3_filesystem

QUIET_S = 10.0  # how long the server's services must loop with no error (each loops every second)
FAST_SERVICES = {
    f"PREFECT_SERVER_SERVICES_{name}_LOOP_SECONDS": "1"
    for name in ("SCHEDULER", "LATE_RUNS", "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS", "FOREMAN", "REPOSSESSOR")
}

FLOW_SCRIPT = textwrap.dedent(
    """
    import asyncio
    from datetime import timedelta

    import os

    from prefect import flow, get_client
    from prefect.filesystems import RemoteFileSystem
    from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
    from prefect.client.schemas.schedules import IntervalSchedule


    @flow(name="pg-hello")
    def hello(n: int) -> int:
        return n * 2


    async def schedule_one() -> None:
        # A scheduled deployment makes the scheduler service write runs into PostgreSQL every loop.
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name="pg-pool", type="process"))
            flow_id = await client.create_flow_from_name("pg-hello")
            await client.create_deployment(
                flow_id=flow_id,
                name="every-minute",
                work_pool_name="pg-pool",
                entrypoint="pg_flow.py:hello",
                parameters={"n": 1},
                schedules=[DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(minutes=1)))],
            )


    # Shared result storage, as the README sets it up: an fsspec block on S3 that every worker sees.
    RemoteFileSystem(basepath=os.environ["RESULTS_BASEPATH"]).save("team-results", overwrite=True)
    assert hello(21) == 42
    asyncio.run(schedule_one())
    print("flow ran")
    """
)


async def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        return [tuple(r) for r in await conn.fetch(query, timeout=10)]
    finally:
        await conn.close(timeout=10)


def rows(pg: PostgresCluster, query: str) -> list[tuple[object, ...]]:
    return asyncio.run(_rows(pg.url("postgresql"), query))


SCHEDULED_RUNS = (
    "select count(*) from flow_run r join deployment d on d.id = r.deployment_id"
    " where d.name = 'every-minute' and r.state_type = 'SCHEDULED'"
)
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_prefect_server_on_postgresql_runs_a_flow_and_its_services_log_no_error(
    tmp_path: Path, moto_s3: MotoS3, bucket: str
) -> None:
    results = {
        "RESULTS_BASEPATH": f"s3://{bucket}/prefect-results",
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "remote-file-system/team-results",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
    }
    with PostgresCluster() as pg:
        with PrefectServer(tmp_path / "server", database_url=pg.url(), extra_env=FAST_SERVICES) as server:
            started = time.monotonic()
            script = tmp_path / "pg_flow.py"
            script.write_text(FLOW_SCRIPT, encoding="utf-8")
            done = subprocess.run(
                [sys.executable, str(script)],
                env={**os.environ, **server.client_env(), **results},
                capture_output=True,
                text=True,
                timeout=180,
                cwd=tmp_path,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert "flow ran" in done.stdout

            # The run is in PostgreSQL itself, not in some SQLite file beside the server.
            runs = rows(pg, "select f.name, r.state_type from flow_run r join flow f on f.id = r.flow_id")
            assert ("pg-hello", "COMPLETED") in runs
            # Its result went to S3 (Moto), written by the flow's process through s3fs.
            stored = s3_filesystem().find(f"{bucket}/prefect-results")
            assert stored, "no result object under the result storage's prefix"

            # The scheduler writes the deployment's runs into PostgreSQL within a few of its loops.
            deadline = time.monotonic() + 60
            while (scheduled := rows(pg, SCHEDULED_RUNS)[0][0]) == 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert scheduled > 0, "the scheduler wrote no run: it is failing on PostgreSQL"
            # Let the services (scheduler, late runs, foreman, ...) loop for QUIET_S in all.
            time.sleep(max(0.0, QUIET_S - (time.monotonic() - started)))
            log = server.log_text()
        assert server.proc is not None and server.proc.returncode is not None
    errors = [line for line in log.splitlines() if ERROR_LINE.search(line)]
    assert errors == [], "\n".join(errors[:20])
