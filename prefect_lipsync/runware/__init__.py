"""Runware API: the sync-3 request and result models, the client, the poller, the webhook receiver."""

from prefect_lipsync.runware.models import (
    MODEL_ID,
    ErrorItem,
    MediaUpload,
    Problem,
    Sync3Request,
    Sync3Result,
    Sync3ValidationError,
)

__all__ = [
    "MODEL_ID",
    "ErrorItem",
    "MediaUpload",
    "Problem",
    "Sync3Request",
    "Sync3Result",
    "Sync3ValidationError",
]
