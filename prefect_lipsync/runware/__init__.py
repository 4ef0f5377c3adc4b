"""Runware API: the sync-3 request and result models, the client, the poller, the webhook receiver."""

from prefect_lipsync.runware.client import RunwareClient, Submitted
from prefect_lipsync.runware.downloads import DownloadPolicy
from prefect_lipsync.runware.errors import (
    AuthError,
    ContentFlagged,
    DownloadError,
    InsufficientCredits,
    JobTimeout,
    LocalMediaError,
    RateLimited,
    RequestRejected,
    RunwareError,
    ServiceError,
    TaskFailed,
    TaskNotFound,
    TaskNotKnown,
    TransientTaskError,
    ValidationError,
)
from prefect_lipsync.runware.ids import derive_task_uuid, retry_task_uuid
from prefect_lipsync.runware.models import (
    MODEL_ID,
    ErrorItem,
    MediaUpload,
    Problem,
    Sync3Request,
    Sync3Result,
    Sync3ValidationError,
)
from prefect_lipsync.runware.sync import SyncRunwareClient
from prefect_lipsync.runware.transport import DEFAULT_BASE_URL, AttemptDeadline, RetryPolicy
from prefect_lipsync.runware.uploads import MemoryUploadCache, UploadCache
from prefect_lipsync.runware.waiting import PollPolicy, ProgressCallback
from prefect_lipsync.runware.webhooks import WebhookReceiver, serve_webhooks

__all__ = [
    "DEFAULT_BASE_URL",
    "MODEL_ID",
    "AttemptDeadline",
    "AuthError",
    "ContentFlagged",
    "DownloadError",
    "DownloadPolicy",
    "ErrorItem",
    "InsufficientCredits",
    "JobTimeout",
    "LocalMediaError",
    "MediaUpload",
    "MemoryUploadCache",
    "PollPolicy",
    "Problem",
    "ProgressCallback",
    "RateLimited",
    "RequestRejected",
    "RetryPolicy",
    "RunwareClient",
    "RunwareError",
    "ServiceError",
    "Submitted",
    "Sync3Request",
    "Sync3Result",
    "Sync3ValidationError",
    "SyncRunwareClient",
    "TaskFailed",
    "TaskNotFound",
    "TaskNotKnown",
    "TransientTaskError",
    "UploadCache",
    "ValidationError",
    "WebhookReceiver",
    "derive_task_uuid",
    "retry_task_uuid",
    "serve_webhooks",
]
