"""Fixtures for the storage tests: Moto's S3 server on loopback, a bucket per test, tiny real media."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))  # --import-mode=importlib: make tests/infra.py importable

from infra import MotoS3, environ

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
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


@dataclass(frozen=True)
class TinyMedia:
    video: Path  # 2 s, 160x90, 25 fps, with a stereo tone
    dub: Path  # 2 s of mono speech-band tone, WAV
    line: Path  # 0.8 s of tone, WAV


@pytest.fixture(scope="session")
def tiny_media(tmp_path_factory: pytest.TempPathFactory) -> TinyMedia:
    root = tmp_path_factory.mktemp("tiny-media")
    video, dub, line = root / "promo.mp4", root / "es.wav", root / "l1.wav"
    run_ffmpeg(
        ["-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2:sample_rate=48000",
         "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(video)]
    )  # fmt: skip
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=2:sample_rate=44100", str(dub)])
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=frequency=500:duration=0.8:sample_rate=44100", str(line)])
    return TinyMedia(video, dub, line)
