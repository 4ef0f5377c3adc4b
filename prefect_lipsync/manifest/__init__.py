"""Manifests (YAML/JSON, SRT/WebVTT import) and the planner that turns them into sync-3 requests."""

from prefect_lipsync.manifest.errors import ManifestError, ManifestProblem
from prefect_lipsync.manifest.limits import ManifestLimits
from prefect_lipsync.manifest.loader import (
    LoadedManifest,
    PlanLine,
    load_manifest,
    prepare,
    read_manifest,
    read_manifest_data,
)
from prefect_lipsync.manifest.pipeline import load_and_plan
from prefect_lipsync.manifest.plan_models import (
    DEFAULT_PRICE_PER_SECOND,
    DroppedLine,
    FinalMix,
    Plan,
    PlannedAudioOp,
    PlannedJob,
)
from prefect_lipsync.manifest.planner import plan_manifest
from prefect_lipsync.manifest.schema import (
    AudioStreamRef,
    Defaults,
    LanguageSpec,
    Line,
    Manifest,
    SpeakerPoint,
    SpeakerTarget,
    SpeechSpec,
)

__all__ = [
    "DEFAULT_PRICE_PER_SECOND",
    "AudioStreamRef",
    "Defaults",
    "DroppedLine",
    "FinalMix",
    "LanguageSpec",
    "Line",
    "LoadedManifest",
    "Manifest",
    "ManifestError",
    "ManifestLimits",
    "ManifestProblem",
    "Plan",
    "PlanLine",
    "PlannedAudioOp",
    "PlannedJob",
    "SpeakerPoint",
    "SpeakerTarget",
    "SpeechSpec",
    "load_and_plan",
    "load_manifest",
    "plan_manifest",
    "prepare",
    "read_manifest",
    "read_manifest_data",
]
