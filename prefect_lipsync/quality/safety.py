"""Content safety: the service's NSFW flag, and the quarantine a flagged output goes to."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.quality.models import CheckResult, QualityReport, QualityThresholds

QUARANTINE_DIR = "quarantine"


def safety_check(nsfw_flag: bool | None, mode: str, t: QualityThresholds) -> CheckResult:
    if nsfw_flag:
        return CheckResult(
            name="content_safety",
            status="fail",
            value=True,
            threshold="NSFWContent is false",
            message=f"The service flagged the output as NSFW (safety mode {mode}); it must not be published.",
        )
    if nsfw_flag is False:
        return CheckResult(
            name="content_safety",
            status="pass",
            value=False,
            threshold="NSFWContent is false",
            message=f"The service did not flag the output (safety mode {mode}).",
        )
    unchecked = mode == "none"
    status = "warn" if (unchecked and t.require_content_check) or (not unchecked) else "pass"
    message = (
        "The service was not asked to check content."
        if unchecked
        else f"Content checking was asked for (mode {mode}) but the result carries no NSFWContent flag."
    )
    return CheckResult(
        name="content_safety", status=status, value=None, threshold="NSFWContent is false", message=message
    )


def quarantine(output: Path, report: QualityReport) -> Path:
    """Move `output` into a `quarantine/` directory beside it, with the report that says why.

    Returns the new path and records it in `report.quarantined_to`. The delivery path is left empty.
    """
    output = Path(output)
    folder = output.parent / QUARANTINE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / output.name
    counter = 1
    while target.exists():
        target = folder / f"{output.stem}.{counter}{output.suffix}"
        counter += 1
    os.replace(output, target)
    report.quarantined_to = str(target)
    reasons = [c.message for c in report.checks if c.status == "fail"]
    body = {"reasons": reasons, "report": report.model_dump(mode="json")}
    write_text_atomic(target.with_name(target.name + ".quarantine.json"), json.dumps(body, indent=2))
    return target
