"""One exception tree for everything the Runware service (or the way to it) can answer.

Codes are not stable across providers, so an error is classified by its code *family* (the
substring rules of the official SDK) and, where the code says nothing, by the HTTP status.
Every error keeps the service's `code`, `message`, `parameter` and `taskUUID`; none ever holds
the API key (the client never puts it anywhere but a `SecretStr` and the request header).

    RunwareError
    ├── AuthError                 401/403, *ApiKey*, unauthorized...
    ├── InsufficientCredits       402, *Credits*|*Quota*|*Balance*|paymentRequired
    ├── RequestRejected (= ValidationError)   400, invalid*|missing*|unsupported*|max*...
    │   └── LocalMediaError       a file:// reference was not uploaded first (refused locally)
    ├── TaskNotFound              404, taskNotFound|*NotFound|*Expired
    │   └── TaskNotKnown          a submitted task the service has no record of (purged, reset)
    ├── RateLimited               429, *RateLimit*           (transient)
    ├── ServiceError              408, 5xx, connection trouble, non-JSON answers (transient)
    ├── TaskFailed                the task ran and failed
    │   ├── ContentFlagged        safety codes
    │   └── TransientTaskError    *Timeout*, provider trouble: a resubmit may succeed (and is paid)
    ├── JobTimeout                our own deadline for a job passed
    └── DownloadError             a result could not be fetched
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prefect_lipsync.runware.models import ErrorItem

Phase = Literal["request", "task"]

_SAFETY_CODES = frozenset(
    {
        "contentPolicyViolation",
        "providerContentPolicyViolation",
        "sensitiveContentDetected",
        "unsafeContentDetected",
        "nsfwContentDetected",
        "promptBlocked",
        "imageBlocked",
        "moderationFailed",
        "invalidProviderContent",
    }
)
_AUTH_CODES = frozenset(
    {
        "unauthorized",
        "forbidden",
        "permissionDenied",
        "insufficientPermissions",
        "authenticationFailed",
        "authFailed",
        "invalidAuthentication",
        "invalidCredentials",
        "missingAuthentication",
        "tokenExpired",
        "tokenInvalid",
        "tokenMissing",
        "tokenRevoked",
        "accountSuspended",
        "accountDisabled",
        "organizationSuspended",
        "organizationDisabled",
        "workspaceSuspended",
        "workspaceDisabled",
    }
)
_SERVER_CODES = frozenset(
    {
        "internalServerError",
        "serviceUnavailable",
        "serverUnavailable",
        "standardError",
        "unknownError",
        "undefinedError",
        "defaultError",
        "unrecognizedResponse",
    }
)
_PROVIDER_CODES = frozenset(
    {
        "inferenceError",
        "processingFailed",
        "taskFailed",
        "downloadFailed",
        "uploadFailed",
        "noAvailableServer",
        "modelUnavailable",
        "modelNotReady",
    }
)
_VALIDATION_EXACT = frozenset(
    {"unknownParameter", "incompatibleParameters", "validationFailed", "unknownModel", "modelDisabled"}
)
_VALIDATION_PREFIXES = ("invalid", "missing", "unsupported", "max", "min", "duplicate", "value", "array")

CONFLICT_CODE = "conflictTaskUUID"
NOT_FOUND_CODE = "taskNotFound"

Family = Literal[
    "quota", "rateLimit", "safety", "auth", "timeout", "notFound", "server", "provider", "validation",
    "conflict", "unknown",
]  # fmt: skip


def code_family(code: str | None) -> Family:
    """The family of a service error code, by the official SDK's substring rules (first match wins)."""
    raw = code or ""
    if raw == CONFLICT_CODE or raw.startswith("conflictTask"):
        return "conflict"
    if any(s in raw for s in ("Credits", "Quota", "Balance")) or raw in {"quotaExceeded", "paymentRequired"}:
        return "quota"
    if "RateLimit" in raw or raw == "rateLimitExceeded":
        return "rateLimit"
    if raw in _SAFETY_CODES:
        return "safety"
    if raw in _AUTH_CODES or "ApiKey" in raw:
        return "auth"
    if "timeout" in raw.lower():  # timeoutProvider, providerTimeout, gatewayTimeout
        return "timeout"
    if raw == NOT_FOUND_CODE or raw.endswith("NotFound") or raw.endswith("Expired"):
        return "notFound"
    if raw in _SERVER_CODES:
        return "server"
    if raw in _PROVIDER_CODES or raw.startswith("provider"):
        return "provider"
    if raw in _VALIDATION_EXACT or raw.startswith(_VALIDATION_PREFIXES):
        return "validation"
    return "unknown"


class RunwareError(Exception):
    """Base of every error the Runware client raises."""

    #: Whether repeating the same HTTP request may succeed (the client already did, within bounds).
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        parameter: str | list[str] | None = None,
        task_uuid: str | None = None,
        status_code: int | None = None,
        task_type: str | None = None,
        retry_after: float | None = None,
        errors: Sequence[ErrorItem] = (),
    ) -> None:
        self.message = message
        self.code = code or "unknown"
        self.parameter = parameter
        self.task_uuid = task_uuid
        self.status_code = status_code
        self.task_type = task_type
        self.retry_after = retry_after
        #: Every error item of the answer (a batch may carry one per task).
        self.errors: tuple[ErrorItem, ...] = tuple(errors)
        super().__init__(message)

    def __str__(self) -> str:
        where = []
        if self.status_code is not None:
            where.append(f"HTTP {self.status_code}")
        if self.code != "unknown":
            where.append(self.code)
        if self.parameter:
            where.append(f"parameter {self.parameter}")
        if self.task_uuid:
            where.append(f"task {self.task_uuid}")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"{self.message}{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, task_uuid={self.task_uuid!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields survive pickling (Prefect ships exceptions between processes).
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[RunwareError], message: str, state: dict[str, object]) -> RunwareError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class AuthError(RunwareError):
    """The API key is missing, wrong, or not allowed to do this. Check the key; do not retry."""


class InsufficientCredits(RunwareError):
    """The account has no money (or quota) left for this task. Top up; do not retry."""


class RequestRejected(RunwareError):
    """The service refused the request as invalid. Fix the request; do not retry."""


# The design names it ValidationError; RequestRejected avoids the clash with pydantic's.
ValidationError = RequestRejected


class LocalMediaError(RequestRejected):
    """A request still points at local files (`file://`): upload them first (`client.upload`)."""


class TaskNotFound(RunwareError):
    """The service does not know this taskUUID (never submitted, or expired)."""


class TaskNotKnown(TaskNotFound):
    """A task we submitted (or a cache says we did) that the service has no record of.

    It was purged, or the endpoint was reset: waiting longer cannot bring its result back.
    `accepted` says whether this client saw the service accept the taskUUID (True), or cannot
    know (None: e.g. the submit was made by an earlier run). A task the service never accepted
    may be submitted again under the same UUID; one it did accept is paid for again only
    deliberately, with a new `rerun_nonce` (which makes a new taskUUID).
    """

    def __init__(self, task_uuid: str, *, accepted: bool | None = None, code: str | None = None) -> None:
        super().__init__(
            f"the service has no record of task {task_uuid} (it was purged, or the endpoint was"
            " reset), so its result cannot be fetched; to pay for it again deliberately, run it"
            " with a new rerun_nonce (a new taskUUID)",
            code=code or NOT_FOUND_CODE,
            task_uuid=task_uuid,
        )
        self.accepted = accepted


class RateLimited(RunwareError):
    """The service asked us to slow down (429 or a rate-limit code)."""

    transient = True


class ServiceError(RunwareError):
    """The service or the way to it failed for now (408, 5xx, reset, timeout, garbage answer)."""

    transient = True


class TaskFailed(RunwareError):
    """The task was accepted, ran, and failed."""


class ContentFlagged(TaskFailed):
    """The task was stopped by a content-safety check."""


class TransientTaskError(TaskFailed):
    """The task failed for a reason that may pass (provider timeout or trouble).

    Resubmitting creates a NEW paid task, so the client does it at most `max_task_retries` times.
    """


class JobTimeout(RunwareError):
    """A job did not finish within the time we allowed it (the service may still finish and bill it)."""


class DownloadError(RunwareError):
    """A result file could not be downloaded completely."""


def _class_for_status(status: int | None) -> type[RunwareError] | None:
    if status is None:
        return None
    if status in (401, 403):
        return AuthError
    if status == 402:
        return InsufficientCredits
    if status == 404:
        return TaskNotFound
    if status == 429:
        return RateLimited
    if status == 408 or status >= 500:
        return ServiceError
    if 400 <= status < 500:
        return RequestRejected
    return None


def error_class(
    code: str | None, status: int | None = None, *, phase: Phase = "request"
) -> type[RunwareError]:
    """Which error a (code, HTTP status) pair means.

    `phase="request"`: the answer to a POST (submit, poll, upload). `phase="task"`: the failure
    of a task that was accepted and ran (reported by getResponse or a webhook).
    """
    family = code_family(code)
    if phase == "task":
        if family == "safety":
            return ContentFlagged
        # Only a timeout is known to be transient: resubmitting anything else is a new paid task
        # that would most likely fail the same way.
        if family == "timeout":
            return TransientTaskError
        if family == "quota":
            return InsufficientCredits
        if family == "auth":
            return AuthError
        if family == "notFound":
            return TaskNotFound
        return TaskFailed
    by_family: dict[Family, type[RunwareError]] = {
        "quota": InsufficientCredits,
        "rateLimit": RateLimited,
        "safety": ContentFlagged,
        "auth": AuthError,
        "timeout": ServiceError,
        "notFound": TaskNotFound,
        "server": ServiceError,
        "provider": ServiceError,
        "validation": RequestRejected,
        "conflict": RequestRejected,
    }
    status_cls = _class_for_status(status)
    family_cls = by_family.get(family)
    # A 5xx with a validation-looking code is still the server's trouble; otherwise the code is
    # more precise than the status.
    if status_cls is ServiceError and family_cls is RequestRejected:
        return ServiceError
    return family_cls or status_cls or RunwareError


def make_error(
    code: str | None,
    message: str,
    *,
    status: int | None = None,
    phase: Phase = "request",
    parameter: str | list[str] | None = None,
    task_uuid: str | None = None,
    task_type: str | None = None,
    retry_after: float | None = None,
    errors: Sequence[ErrorItem] = (),
) -> RunwareError:
    """Build the right RunwareError subclass for a service answer."""
    cls = error_class(code, status, phase=phase)
    return cls(
        message or (code or f"HTTP {status}"),
        code=code,
        parameter=parameter,
        task_uuid=task_uuid,
        status_code=status,
        task_type=task_type,
        retry_after=retry_after,
        errors=errors,
    )


def error_from_item(
    item: ErrorItem, *, status: int | None = None, phase: Phase = "request", task_uuid: str | None = None
) -> RunwareError:
    """The RunwareError for one error item of an answer."""
    return make_error(
        item.code,
        item.message,
        status=status,
        phase=phase,
        parameter=item.parameter,
        task_uuid=item.task_uuid or task_uuid,
        task_type=item.task_type,
        errors=(item,),
    )


#: Codes of a result URL's error answer saying the file cannot be made, however often it is asked for
#: (its rendering failed the same way each time): such a download is not retried.
_RESULT_FAILED_CODES = frozenset({"renderFailed", "encodingFailed", "transcodingFailed", "outputFailed"})


def download_failure_is_final(code: str | None) -> bool:
    """Whether an error answer to a result download says that asking again cannot help.

    Only an explicit code says so: a bare 5xx (an HTML page, no body) stays transient, and so does a
    code of the timeout, server or rate-limit families.
    """
    return code in _RESULT_FAILED_CODES


def is_transient(exc: BaseException) -> bool:
    """Whether repeating the same HTTP request may succeed."""
    return isinstance(exc, RunwareError) and exc.transient
