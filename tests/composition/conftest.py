"""A team's own flows built from the public tasks, run as a team runs them: a script in its own process,
against a real `prefect server start` and the emulator over loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))  # --import-mode=importlib: make tests/infra.py importable
sys.path.insert(0, str(Path(__file__).parent))  # and user_runs.py

from infra import PrefectServer


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One server for the modules here, stopped after the last of them (they run one after the other on one
    xdist worker: `xdist_group("composition")`); each test finds its runs by its own flow names."""
    with PrefectServer(tmp_path_factory.mktemp("prefect-server")) as running:
        yield running
