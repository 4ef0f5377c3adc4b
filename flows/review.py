"""What a failed check does to a run: `fail` fails it, `warn` delivers and reports, `ask` pauses the
flow run for a person, whose decision the core carries out (`pipeline.review`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from pydantic import Field

from prefect_lipsync.flows.options import RunOptions
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.pipeline.review import carry_out_decision
from prefect_lipsync.tasks.events import emit_output_event
from prefect_lipsync.tasks.report import (
    failing_checks,
    quality_findings_markdown,
)

if TYPE_CHECKING:
    from prefect_lipsync.flows.manifest import LocalizeResult


class QualityRejected(RuntimeError):
    """A run whose outputs failed their checks (policy `fail`), or that a reviewer rejected."""


class QualityApproval(RunInput):
    """A reviewer's decision on outputs with findings."""

    approved: bool = Field(description="Approve the held outputs for delivery despite the findings.")
    reviewer: str = Field(default="", description="Who decided.")
    comment: str = Field(default="", description="Why.")


async def apply_quality_policy(
    result: LocalizeResult, options: RunOptions, *, out_root: Destination
) -> LocalizeResult:
    """`fail`: a failed check fails the run; `warn`: it completes; `ask`: a person decides on held outputs."""
    logger = get_run_logger()
    errors = [o for o in result.outputs if o.error]
    if errors:
        raise QualityRejected(
            f"{len(errors)} of {len(result.outputs)} languages did not produce an output: "
            + "; ".join(f"{o.language}: {o.error}" for o in errors)
        )
    failed = [o for o in result.outputs if o.verdict == "fail"]
    if not failed:
        return result
    findings = quality_findings_markdown(failing_checks(failed))
    if options.quality_policy == "warn":
        logger.warning("Quality checks failed (policy warn, delivered anyway):\n%s", findings)
        return result
    held = [o for o in failed if o.held]
    if options.quality_policy == "fail" or not held:
        raise QualityRejected(
            f"Quality checks failed for {', '.join(o.language for o in failed)}:\n{findings}"
        )
    timeout_s = options.approval_timeout_s
    logger.warning("Quality checks failed; waiting up to %s s for a reviewer:\n%s", timeout_s, findings)
    try:
        decision = await apause_flow_run(
            wait_for_input=QualityApproval.with_initial_data(
                description=(
                    f"## Quality findings\n\n{findings}\n\nApprove to deliver the held outputs anyway (they move "
                    "from quarantine to their delivery names); reject to keep them in quarantine."
                ),
                approved=False,
            ),
            timeout=timeout_s,
            poll_interval=2,
        )
    except FlowPauseTimeout as exc:  # nobody decided in time: that is a rejection
        logger.error("No reviewer decision within %s s: outputs rejected.", timeout_s)
        for output in held:
            carry_out_decision(
                output,
                out_root.child(result.name),
                approved=False,
                reviewer="",
                comment=f"no decision within {timeout_s} s",
            )
        raise QualityRejected(f"No reviewer decision within {timeout_s} s: outputs rejected.") from exc
    reviewer = decision.reviewer or "a reviewer"
    out_dir = out_root.child(result.name)
    for output in held:
        carry_out_decision(
            output, out_dir, approved=decision.approved, reviewer=reviewer, comment=decision.comment
        )
        if decision.approved:
            emit_output_event(result.name, output)  # released: delivered now, like any other
    out_dir.write_text("result.json", result.model_dump_json(indent=2))
    if not decision.approved:
        raise QualityRejected(f"Rejected by {reviewer}: {decision.comment or 'no comment'}")
    logger.info("Approved by %s: %s", reviewer, decision.comment)
    return result
