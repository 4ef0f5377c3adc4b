"""Shared test settings. Each area keeps its own fixtures in tests/<area>/conftest.py."""

import os
import tempfile
from pathlib import Path

import pytest

# Prefect must never phone home or print telemetry errors from tests.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Probe and audio caches of a test run stay out of the user's real cache.
os.environ.setdefault("PREFECT_LIPSYNC_CACHE_DIR", tempfile.mkdtemp(prefix="prefect-lipsync-test-cache-"))


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own cache folder, so journals and uploads of one test never serve another."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("PREFECT_LIPSYNC_CACHE_DIR", str(folder))
    return folder
