"""Quality and safety checks: pre-flight before paying, checks on each output after.

The core of the checks knows nothing of Prefect; `tasks/` wraps these functions.
"""

from prefect_lipsync.quality.checks import check_output, quarantine
from prefect_lipsync.quality.models import CheckResult, QualityReport, QualityThresholds, Status, TimeRange
from prefect_lipsync.quality.pictures import write_pictures
from prefect_lipsync.quality.preflight import preflight

__all__ = [
    "CheckResult",
    "QualityReport",
    "QualityThresholds",
    "Status",
    "TimeRange",
    "check_output",
    "preflight",
    "quarantine",
    "write_pictures",
]
