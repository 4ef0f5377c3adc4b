"""Events a team can chain its own deployments on: a job's way, and each output's fate."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

from prefect_lipsync.pipeline import LanguageOutput

#: Emitted once per output a run delivers, holds for a reviewer, or fails to make.
OUTPUT_DELIVERED = "prefect-lipsync.output.delivered"
OUTPUT_HELD = "prefect-lipsync.output.held"
OUTPUT_FAILED = "prefect-lipsync.output.failed"


def emit_job_event(name: str, language: str, task_uuid: str, payload: dict[str, Any]) -> None:
    """`prefect-lipsync.job.NAME` about one job, its resource the job's taskUUID."""
    emit_event(
        event=f"prefect-lipsync.job.{name}",
        resource={
            "prefect.resource.id": f"prefect-lipsync.job.{task_uuid}",
            "prefect-lipsync.language": language,
        },
        payload=payload,
    )


def output_event_name(output: LanguageOutput) -> str:
    if output.output and not output.error:
        return OUTPUT_DELIVERED
    if output.held:
        return OUTPUT_HELD
    return OUTPUT_FAILED


def emit_output_event(run_name: str, output: LanguageOutput) -> None:
    """The output's event: its resource names the output (its ref, else the run and language); the
    payload carries what a downstream step needs (no secret: refs, names, verdict, taskUUID)."""
    ref = output.output or output.quarantined_to
    emit_event(
        event=output_event_name(output),
        resource={
            "prefect.resource.id": f"prefect-lipsync.output.{ref or f'{run_name}.{output.language}'}",
            "prefect.resource.name": f"{run_name} ({output.language})",
            "prefect-lipsync.manifest": run_name,
            "prefect-lipsync.language": output.language,
        },
        payload={
            "manifest": run_name,
            "language": output.language,
            "verdict": output.verdict,
            "output": output.output,
            "quarantined_to": output.quarantined_to,
            "report": output.report,
            "task_uuid": output.task_uuid,
            "error": output.error,
        },
    )
