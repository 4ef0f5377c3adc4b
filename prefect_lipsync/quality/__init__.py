"""Quality and safety checks: pre-flight before paying, checks on each output after.

The core of the checks knows nothing of Prefect; `tasks/` wraps these functions.
"""

from prefect_lipsync.quality.bestof import Choice, choose_best
from prefect_lipsync.quality.checks import check_output, quarantine
from prefect_lipsync.quality.face import FoundFace, face_finder, mouth_box_of
from prefect_lipsync.quality.models import CheckResult, QualityReport, QualityThresholds, Status, TimeRange
from prefect_lipsync.quality.pictures import write_pictures
from prefect_lipsync.quality.planned import check_planned_output
from prefect_lipsync.quality.preflight import preflight
from prefect_lipsync.quality.source_analysis import SourceAnalysis, analyze_source

__all__ = [
    "CheckResult",
    "Choice",
    "FoundFace",
    "QualityReport",
    "QualityThresholds",
    "SourceAnalysis",
    "Status",
    "TimeRange",
    "analyze_source",
    "check_output",
    "check_planned_output",
    "choose_best",
    "face_finder",
    "mouth_box_of",
    "preflight",
    "quarantine",
    "write_pictures",
]
