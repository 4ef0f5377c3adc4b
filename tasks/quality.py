"""The checks task: an output judged against its source and planned job, its report an artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Failed

from prefect_lipsync.manifest import PlannedJob
from prefect_lipsync.pipeline.settings import RunSettings
from prefect_lipsync.pipeline.steps import QualityCheckFailed, check_job_output, local_source
from prefect_lipsync.quality import QualityReport, write_pictures
from prefect_lipsync.runware.models import Sync3Result
from prefect_lipsync.tasks.dispatch import dispatch_to, run_sync
from prefect_lipsync.tasks.report import artifact_key, report_markdown
from prefect_lipsync.tasks.resilience import best_effort

CHECKS_NAME = "run-quality-checks"
CHECKS_DESCRIPTION = (
    "Check an output against its source and planned job: streams, length, audio, pictures, lip-sync."
)


async def _check(
    output: str,
    source: str,
    job: PlannedJob | dict[str, Any] | None,
    result: Sync3Result | None,
    settings: RunSettings | None,
    lipsync_expected: bool | None,
    raise_on_failure: bool,
    create_artifact: bool,
    fail_task_run: bool = False,
) -> QualityReport | State[QualityReport]:
    thresholds = (settings or RunSettings()).quality

    def check() -> tuple[QualityReport, list[str]]:
        report = check_job_output(
            output,
            source=source,
            job=job,
            thresholds=thresholds,
            result=result,
            lipsync_expected=lipsync_expected,
        )
        if not create_artifact:
            return report, []
        payload = job.request.to_wire() if isinstance(job, PlannedJob) else None
        pictures = write_pictures(
            report, output=Path(output), source=local_source(source), request_payload=payload
        )
        return report, [str(p) for p in pictures.values()]

    report, pictures = await anyio.to_thread.run_sync(check)
    language = job.language if isinstance(job, PlannedJob) else Path(output).stem
    if create_artifact:
        # Built now, while the pictures are where they were written; sent when the API allows.
        markdown = report_markdown(language, report, pictures)
        run = job.run_name if isinstance(job, PlannedJob) and job.run_name else Path(output).stem
        await best_effort(
            lambda: acreate_markdown_artifact(
                markdown=markdown,
                key=artifact_key("lipsync-quality", run, language),
                description=f"Quality report of {run} ({language}): {report.verdict}",
            ),
            f"the quality report of {language}",
        )
    get_run_logger().info("%s: quality %s", language, report.verdict)
    if raise_on_failure and report.verdict == "fail":
        raise QualityCheckFailed(report)
    if fail_task_run and report.verdict == "fail":
        # The task run ends Failed (as people look for it in the UI), without a traceback in the log;
        # the report is the state's data.
        failing = sum(1 for c in report.checks if c.status == "fail")
        return Failed(message=f"{failing} quality check(s) failed; see the report", data=report)
    return report


@task(name=CHECKS_NAME, description=CHECKS_DESCRIPTION, cache_policy=NO_CACHE)
async def arun_quality_checks(
    output: str,
    *,
    source: str,
    job: PlannedJob | dict[str, Any] | None = None,
    result: Sync3Result | None = None,
    settings: RunSettings | None = None,
    lipsync_expected: bool | None = None,
    raise_on_failure: bool = False,
    create_artifact: bool = True,
    fail_task_run: bool = False,
) -> QualityReport:
    """Check an output against its source (async twin of `run_quality_checks`).

    Args:
        output: The output video (a local path).
        source: The source video it was made from (path, s3:// or https://).
        job: The `PlannedJob` (or a job of `prefect-lipsync plan --json`): planned segments, face box.
        result: The service's `Sync3Result` for it: whether it was flagged, and whether the local
            emulator made it (then no lip movement is expected).
        settings: Run settings or a `LipsyncSettings` block (the quality thresholds).
        lipsync_expected: Whether lips must have moved; default: unless `result` came from the emulator.
        raise_on_failure: Raise `QualityCheckFailed` (the task run fails) when the verdict is `fail`.
        create_artifact: Attach the report, with its pictures, to the task run as a markdown artifact.
        fail_task_run: When the verdict is `fail`, end the task run Failed without raising: call it with
            `return_state=True` and read the report with `state.result(raise_on_failure=False)`.

    Returns:
        The `QualityReport`: one entry per check and the verdict (`pass`, `warn` or `fail`).

    Raises:
        QualityCheckFailed: With `raise_on_failure`, when the verdict is `fail` (it carries the report).
        MediaError: The source cannot be probed.

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import arun_quality_checks

        @flow
        async def judge(output: str, source: str) -> str:
            return (await arun_quality_checks(output, source=source)).verdict
        ```
    """
    return await _check(  # type: ignore[return-value]  # a State only with fail_task_run
        output,
        source,
        job,
        result,
        settings,
        lipsync_expected,
        raise_on_failure,
        create_artifact,
        fail_task_run,
    )


@task(name=CHECKS_NAME, description=CHECKS_DESCRIPTION, cache_policy=NO_CACHE)
@dispatch_to(arun_quality_checks)
def run_quality_checks(
    output: str,
    *,
    source: str,
    job: PlannedJob | dict[str, Any] | None = None,
    result: Sync3Result | None = None,
    settings: RunSettings | None = None,
    lipsync_expected: bool | None = None,
    raise_on_failure: bool = False,
    create_artifact: bool = True,
    fail_task_run: bool = False,
) -> QualityReport:
    """Check an output against its source and planned job: the verdict `prefect-lipsync check --plan` gives.

    Streams and decoding, duration and geometry, audio level, speech where planned, loudness, black and
    frozen frames, A/V offset, untouched outside the mouth, mouth changed, lip-sync offset, safety.

    Args:
        output: The output video (a local path).
        source: The source video it was made from (path, s3:// or https://).
        job: The `PlannedJob` (or a job of `prefect-lipsync plan --json`): planned segments, face box.
        result: The service's `Sync3Result` for it: whether it was flagged, and whether the local
            emulator made it (then no lip movement is expected).
        settings: Run settings or a `LipsyncSettings` block (the quality thresholds).
        lipsync_expected: Whether lips must have moved; default: unless `result` came from the emulator.
        raise_on_failure: Raise `QualityCheckFailed` (the task run fails) when the verdict is `fail`.
        create_artifact: Attach the report, with its pictures, to the task run as a markdown artifact.
        fail_task_run: When the verdict is `fail`, end the task run Failed without raising: call it with
            `return_state=True` and read the report with `state.result(raise_on_failure=False)`.

    Returns:
        The `QualityReport`: one entry per check and the verdict (`pass`, `warn` or `fail`).

    Raises:
        QualityCheckFailed: With `raise_on_failure`, when the verdict is `fail` (it carries the report).
        MediaError: The source cannot be probed.

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import run_quality_checks

        @flow
        def judge(output: str, source: str) -> str:
            return run_quality_checks(output, source=source).verdict
        ```
    """
    return run_sync(  # type: ignore[return-value]  # a State only with fail_task_run
        _check(
            output,
            source,
            job,
            result,
            settings,
            lipsync_expected,
            raise_on_failure,
            create_artifact,
            fail_task_run,
        )
    )
