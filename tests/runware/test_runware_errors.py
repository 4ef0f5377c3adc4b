"""Error classification by code family and HTTP status, as the protocol doc lays it out."""

from __future__ import annotations

import pickle

import httpx
import pytest

from prefect_lipsync.runware import errors as E
from prefect_lipsync.runware.transport import error_from_response, parse_retry_after


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("insufficientCredits", 402, E.InsufficientCredits),
        ("monthlyQuotaExceeded", 400, E.InsufficientCredits),
        ("lowBalance", None, E.InsufficientCredits),
        ("paymentRequired", None, E.InsufficientCredits),
        ("providerRateLimitExceeded", 429, E.RateLimited),
        ("invalidApiKey", 401, E.AuthError),
        ("missingApiKey", None, E.AuthError),
        (None, 401, E.AuthError),
        (None, 403, E.AuthError),
        (None, 402, E.InsufficientCredits),
        ("invalidSegmentTime", 400, E.RequestRejected),
        ("missingInputs", 400, E.RequestRejected),
        ("unsupportedOutputFormat", None, E.RequestRejected),
        ("unknownParameter", None, E.RequestRejected),
        ("incompatibleParameters", None, E.RequestRejected),
        ("maxNumberResults", None, E.RequestRejected),
        (None, 400, E.RequestRejected),
        ("taskNotFound", 400, E.TaskNotFound),
        ("mediaExpired", None, E.TaskNotFound),
        (None, 404, E.TaskNotFound),
        (None, 408, E.ServiceError),
        (None, 429, E.RateLimited),
        (None, 500, E.ServiceError),
        (None, 503, E.ServiceError),
        ("invalidGateway", 502, E.ServiceError),
        ("timeoutProvider", 504, E.ServiceError),
        ("internalServerError", None, E.ServiceError),
        ("nsfwContentDetected", 400, E.ContentFlagged),
        ("somethingNew", None, E.RunwareError),
    ],
)
def test_request_answers_are_classified(code: str | None, status: int | None, expected: type) -> None:
    assert E.error_class(code, status) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("timeoutProvider", E.TransientTaskError),
        ("providerError", E.TaskFailed),  # only a timeout is known to be transient: no paid resubmit
        ("inferenceError", E.TaskFailed),
        ("contentPolicyViolation", E.ContentFlagged),
        ("nsfwContentDetected", E.ContentFlagged),
        ("insufficientCredits", E.InsufficientCredits),
        ("invalidVideo", E.TaskFailed),
        ("whatever", E.TaskFailed),
        ("taskNotFound", E.TaskNotFound),
    ],
)
def test_task_failures_are_classified(code: str, expected: type) -> None:
    assert E.error_class(code, None, phase="task") is expected


def test_only_rate_and_service_errors_are_transient() -> None:
    transient = {
        c for c in vars(E).values() if isinstance(c, type) and issubclass(c, E.RunwareError) and c.transient
    }
    assert transient == {E.RateLimited, E.ServiceError}
    assert issubclass(E.ContentFlagged, E.TaskFailed) and issubclass(E.TransientTaskError, E.TaskFailed)
    assert E.ValidationError is E.RequestRejected


def test_conflict_is_its_own_family() -> None:
    assert E.code_family("conflictTaskUUID") == "conflict"


def test_error_keeps_code_message_parameter_and_task_and_pickles() -> None:
    err = E.make_error(
        "invalidSegmentTime",
        "endTime before startTime",
        status=400,
        parameter="settings.segments",
        task_uuid="t-1",
    )
    text = str(err)
    for part in ("endTime before startTime", "HTTP 400", "invalidSegmentTime", "settings.segments", "t-1"):
        assert part in text
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is E.RequestRejected
    assert (again.code, again.task_uuid, again.status_code) == ("invalidSegmentTime", "t-1", 400)


def test_error_from_json_answer_uses_the_first_error_and_keeps_all() -> None:
    body = {
        "errors": [
            {"code": "invalidApiKey", "message": "bad key", "taskUUID": "a"},
            {"code": "invalidApiKey", "message": "bad key", "taskUUID": "b"},
        ]
    }
    err = error_from_response(httpx.Response(401, json=body))
    assert isinstance(err, E.AuthError)
    assert err.task_uuid == "a" and len(err.errors) == 2 and err.status_code == 401


def test_non_json_5xx_is_a_service_error_with_retry_after() -> None:
    err = error_from_response(
        httpx.Response(503, text="<html>bad gateway</html>", headers={"Retry-After": "7"})
    )
    assert isinstance(err, E.ServiceError) and err.transient
    assert err.retry_after == 7.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
