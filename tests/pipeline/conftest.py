"""Fixtures of the job-runner tests: the demo media, a fresh cache (journal) per test, a client factory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prefect_lipsync.demo import build_demo


@pytest.fixture(scope="session")
def demo_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline-demo")
    build_demo(root)
    return root


@pytest.fixture
def manifest(demo_media: Path, tmp_path: Path) -> Path:
    """A one-language (es) copy of the demo manifest, named after the test's folder."""
    dest = tmp_path / "inbox"
    shutil.copytree(demo_media, dest)
    path = dest / "manifest.yaml"
    text = path.read_text().replace("name: demo", "name: runner")
    path.write_text(text.split("  de:")[0])
    return path
