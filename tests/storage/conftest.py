"""Fixtures for the storage tests: Moto's S3 server on loopback, a bucket per test, tiny real media."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# botocore must never look for credentials at the EC2 instance-metadata address: loopback only here.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

sys.path.insert(0, str(Path(__file__).parents[1]))  # --import-mode=importlib: make tests/infra.py importable

from infra import MotoS3, TinyMedia, environ, make_tiny_media

from prefect_lipsync.storage import MediaCache, s3_filesystem


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """One Moto server for the session; the process environment points botocore at it (AWS_* only)."""
    home = tmp_path_factory.mktemp("aws-home")
    isolation = {
        # No ~/.aws file of the machine may change what the tests talk to.
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_PROFILE": None,
        "AWS_ENDPOINT_URL": None,
        "AWS_SESSION_TOKEN": None,
    }
    with MotoS3(tmp_path_factory.mktemp("moto")) as server, environ({**isolation, **server.env()}):
        yield server


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    """A fresh, empty bucket (created through the S3 API); its name."""
    name = f"lipsync-{uuid.uuid4().hex[:12]}"
    s3_filesystem().mkdir(name)
    return name


@pytest.fixture(autouse=True)
def media_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default media cache of each test lives in its own temp dir."""
    path = tmp_path / "media-cache"
    monkeypatch.setenv("PREFECT_LIPSYNC_MEDIA_CACHE_DIR", str(path))
    monkeypatch.delenv("PREFECT_LIPSYNC_MEDIA_CACHE_BYTES", raising=False)
    return path


@pytest.fixture
def cache(tmp_path: Path) -> MediaCache:
    return MediaCache(tmp_path / "cache", max_bytes=64 << 20)


@pytest.fixture(scope="session")
def tiny_media(tmp_path_factory: pytest.TempPathFactory) -> TinyMedia:
    return make_tiny_media(tmp_path_factory.mktemp("tiny-media"))
