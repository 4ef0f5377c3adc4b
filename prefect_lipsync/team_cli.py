"""`prefect-lipsync team-setup`: what a team's Prefect server needs once, made idempotently.

- The automation that marks unresponsive flow runs Crashed (Prefect's own recipe for zombie flow
  runs, "detect-zombie-flows"): a worker machine that dies leaves its flow runs Running forever;
  once they stop sending heartbeats this marks them Crashed, and `localize_batch` runs a crashed
  manifest once more, resumed from the shared journal (nothing uploaded or paid again).
- Optionally the global concurrency limit of jobs in flight across every worker.

Flow runs send a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (the deployments in
`deployments/prefect.yaml` set 30); the window given here must be longer than that.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import Any

ZOMBIE_AUTOMATION = "lipsync: crash unresponsive flow runs"
DEFAULT_UNRESPONSIVE_AFTER_S = 90
JOBS_LIMIT = "lipsync-active-jobs"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "team-setup",
        help="Once per Prefect server: the automation that crashes unresponsive flow runs, and a job limit.",
        description=(
            "Creates or updates, on the server PREFECT_API_URL names, the automation that marks flow runs "
            "without a heartbeat Crashed (so the batch runs them again), and with --jobs-in-flight the "
            f"global concurrency limit {JOBS_LIMIT!r}."
        ),
    )
    parser.add_argument(
        "--unresponsive-after",
        type=int,
        default=DEFAULT_UNRESPONSIVE_AFTER_S,
        metavar="SECONDS",
        help="A flow run silent this long is marked Crashed (> the heartbeat period; default %(default)s).",
    )
    parser.add_argument(
        "--jobs-in-flight",
        type=int,
        metavar="N",
        help=f"Also set the global concurrency limit {JOBS_LIMIT!r} to N (name it in LipsyncSettings).",
    )
    parser.set_defaults(handler=_team_setup)


def _team_setup(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        print(
            "team-setup configures a team's Prefect server: set PREFECT_API_URL first "
            "(README: Running it for a team).",
            file=sys.stderr,
        )
        return 2
    if args.unresponsive_after < 31:
        print(
            "--unresponsive-after must be longer than the shortest heartbeat period (30 s).", file=sys.stderr
        )
        return 2
    action = asyncio.run(ensure_zombie_automation(args.unresponsive_after))
    print(f"{action} automation {ZOMBIE_AUTOMATION!r}: unresponsive after {args.unresponsive_after} s")
    if args.jobs_in_flight is not None:
        asyncio.run(ensure_jobs_limit(args.jobs_in_flight))
        print(f"global concurrency limit {JOBS_LIMIT!r}: {args.jobs_in_flight} jobs in flight")
    return 0


def zombie_automation(unresponsive_after_s: int) -> Any:
    """Prefect's zombie-flow recipe, widened to a run that died before its first heartbeat."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=ZOMBIE_AUTOMATION,
        description="Flow runs whose process stopped sending heartbeats (a dead worker) are marked Crashed.",
        trigger=EventTrigger(
            # Pending and Running open the window too: a worker killed between taking a run and its first
            # heartbeat must not leave it Pending or Running forever.
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Pending", "prefect.flow-run.Running"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Running",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                "prefect.flow-run.Paused",  # a paused run (waiting for a reviewer) sends no heartbeat
                "prefect.flow-run.Suspended",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=unresponsive_after_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {unresponsive_after_s} s: its worker is gone (marked by {ZOMBIE_AUTOMATION!r}).",
            )
        ],
    )


async def ensure_zombie_automation(unresponsive_after_s: int) -> str:
    """Create the automation, or update the one of that name; returns what was done."""
    from prefect.client.orchestration import get_client

    wanted = zombie_automation(unresponsive_after_s)
    async with get_client() as client:
        existing = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
        if not existing:
            await wanted.acreate()
            return "created"
        wanted.id = existing[0].id
        await wanted.aupdate()
        for extra in existing[1:]:  # one of a name: a second copy would crash runs twice
            await client.delete_automation(extra.id)
        return "updated"


async def ensure_jobs_limit(limit: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(JOBS_LIMIT)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=JOBS_LIMIT, limit=limit)
            )
            return
        await client.update_global_concurrency_limit(JOBS_LIMIT, GlobalConcurrencyLimitUpdate(limit=limit))
