"""Shared test settings. Each area keeps its own fixtures in tests/<area>/conftest.py."""

import os

# Prefect must never phone home or print telemetry errors from tests.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
