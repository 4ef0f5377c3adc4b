"""One Prefect test server for the Prefect-layer tests: the run's (`infra.run_test_server`, started once
for all xdist workers, SQLite, loopback, on a copy of the run's migrated database)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make prefect_operator importable
sys.path.insert(0, str(Path(__file__).parents[1]))  # and tests/infra.py

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session", autouse=True)
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    from infra import using_run_test_server
    from prefect.settings import PREFECT_HOME, PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    home = tmp_path_factory.mktemp("prefect-home")
    with (
        temporary_settings(
            {
                PREFECT_HOME: str(home),
                PREFECT_LOCAL_STORAGE_PATH: str(home / "storage"),
            }
        ),
        using_run_test_server(server_startup_timeout=120),
    ):
        yield


@pytest.fixture
def prefect_caplog(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Prefect's loggers do not propagate by default; make them, to assert on run logs."""
    logger = logging.getLogger("prefect")
    logger.propagate = True
    try:
        yield caplog
    finally:
        logger.propagate = False
