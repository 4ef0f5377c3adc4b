"""Reusable flows of prefect-lipsync, made of the public tasks: `localize_video` (one manifest),
`lipsync_video` (one video), `localize_batch` (a folder), `localize_manifests` (a chunk of a fanned-out
batch), and the example downstream `publish_dub`."""

from prefect_lipsync.flows.batch import BatchResult, is_done, localize_batch, run_manifest_deployment
from prefect_lipsync.flows.chunk import ChunkResult, localize_manifests
from prefect_lipsync.flows.manifest import (
    BATCH_REPORT,
    LocalizeResult,
    localize_at,
    localize_manifest,
    localize_manifest_task,
)
from prefect_lipsync.flows.publish import publish_dub
from prefect_lipsync.flows.review import QualityApproval, QualityRejected, apply_quality_policy
from prefect_lipsync.flows.video import SAFE_NAME, SegmentInput, SpeechInput, lipsync_video, localize_video

__all__ = [
    "BATCH_REPORT",
    "SAFE_NAME",
    "BatchResult",
    "ChunkResult",
    "LocalizeResult",
    "QualityApproval",
    "QualityRejected",
    "SegmentInput",
    "SpeechInput",
    "apply_quality_policy",
    "is_done",
    "lipsync_video",
    "localize_at",
    "localize_batch",
    "localize_manifest",
    "localize_manifest_task",
    "localize_manifests",
    "localize_video",
    "publish_dub",
    "run_manifest_deployment",
]
