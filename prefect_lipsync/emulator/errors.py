"""Error objects in the service's shape, and the HTTP status a request-level error answers with."""

from __future__ import annotations

from typing import Any

DOCS_URL = "https://runware.ai/docs/models/sync-3"

# The status a POST answers with when it produced no data item and only errors of this code.
_STATUS_BY_CODE = {
    "invalidApiKey": 401,
    "missingApiKey": 401,
    "insufficientCredits": 402,
    "taskNotFound": 404,
}


def error_item(
    code: str,
    message: str,
    *,
    parameter: str | list[str] | None = None,
    task_type: str | None = None,
    task_uuid: str | None = None,
    documentation: str = DOCS_URL,
    status: str | None = None,
) -> dict[str, Any]:
    """One entry of `errors[]`: the fields every Runware error carries."""
    item: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        item["parameter"] = parameter
    if task_type is not None:
        item["taskType"] = task_type
    if task_uuid is not None:
        item["taskUUID"] = task_uuid
    item["documentation"] = documentation
    if status is not None:
        item["status"] = status
    return item


def status_for_errors(errors: list[dict[str, Any]]) -> int:
    """400 for validation-like errors, or the code's own status when every error shares it."""
    statuses = {_STATUS_BY_CODE.get(str(e.get("code")), 400) for e in errors}
    if len(statuses) == 1:
        return statuses.pop()
    # Mixed: the most specific non-400 status wins (money before missing tasks).
    for status in (401, 402, 404):
        if status in statuses:
            return status
    return 400


def code_for_problem(message: str) -> str:
    """Map a model validation message to a Runware error code family."""
    lowered = message.lower()
    if "is required" in lowered:
        return "missingParameter"
    if "together" in lowered or "exactly one of" in lowered or "cannot be used" in lowered:
        return "incompatibleParameters"
    if "not a sync-3 parameter" in lowered:
        return "unknownParameter"
    return "invalidParameter"
