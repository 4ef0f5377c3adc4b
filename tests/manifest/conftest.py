"""Fixtures for the manifest tests: a private probe cache, and tiny media generated with ffmpeg."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make manifest_testkit importable

from prefect_lipsync.files import CACHE_DIR_ENV


@pytest.fixture(autouse=True, scope="session")
def _private_probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Probe results go to a temporary cache, never to the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_DIR_ENV, str(tmp_path_factory.mktemp("probe-cache")))
    yield
    mp.undo()
