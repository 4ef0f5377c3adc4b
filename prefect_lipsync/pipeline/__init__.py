"""The way of one lip-sync job, from a planned request to a delivered, checked video: no Prefect here.

    plan = plan_run("manifest.yaml", settings, work_dir=...)        # probe + plan + budget, once
    async with credentials-made client:
        runner = JobRunner(client, settings, out_dir=..., journal=JobJournal.for_endpoint(url))
        outputs = await run_jobs(runner, plan)                      # one LanguageOutput per language

The Prefect layer (`prefect_lipsync.tasks`, `prefect_lipsync.flows`) wraps the runner's steps through
its `StepHook`; the CLI and tests use it as it is.
"""

from prefect_lipsync.pipeline.delivery import DeliveryPolicy, release_held
from prefect_lipsync.pipeline.journal import JobJournal
from prefect_lipsync.pipeline.outcome import LanguageOutput, RunOutcome
from prefect_lipsync.pipeline.plan import BudgetExceeded, RunPlan, plan_run
from prefect_lipsync.pipeline.runner import JobRunner, Step, StepHook, run_jobs
from prefect_lipsync.pipeline.settings import RunSettings

__all__ = [
    "BudgetExceeded",
    "DeliveryPolicy",
    "JobJournal",
    "JobRunner",
    "LanguageOutput",
    "RunOutcome",
    "RunPlan",
    "RunSettings",
    "Step",
    "StepHook",
    "plan_run",
    "release_held",
    "run_jobs",
]
