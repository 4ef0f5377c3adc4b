"""Shared test settings. Each area keeps its own fixtures in tests/<area>/conftest.py."""

import os
import tempfile

# Prefect must never phone home or print telemetry errors from tests.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Probe and audio caches of a test run stay out of the user's real cache.
os.environ.setdefault("PREFECT_LIPSYNC_CACHE_DIR", tempfile.mkdtemp(prefix="prefect-lipsync-test-cache-"))
