"""Fixtures for the media tests: tiny media made with real ffmpeg, and an ffprobe that counts its runs."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make media_testkit importable

from media_testkit import RATES, MediaSet, ProcessLog, make_video

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaSet:
    root = tmp_path_factory.mktemp("media")
    videos = {name: root / f"v_{name.replace('/', '_')}.mp4" for name in RATES}
    jobs: list[Callable[[], None]] = [
        (lambda out=out, rate=RATES[name]: make_video(out, rate)) for name, out in videos.items()
    ]
    mkv = root / "ntsc.mkv"
    jobs.append(lambda: make_video(mkv, "30000/1001", audio=False))
    vfr = root / "vfr.mp4"
    # 50 fps for the first second, then every other frame: 25 fps (timestamps kept, -fps_mode vfr).
    jobs.append(
        lambda: make_video(
            vfr,
            "50",
            duration=2.0,
            audio=False,
            extra=("-vf", "select='lt(n\\,50)+not(mod(n\\,2))'", "-fps_mode", "vfr"),
        )
    )
    wav, m4a, cover, beep = root / "tone.wav", root / "tone.m4a", root / "cover.mp3", root / "beep.wav"
    jobs.append(
        lambda: run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=duration=1.5:sample_rate=44100", str(wav)])
    )
    jobs.append(
        lambda: run_ffmpeg(
            [
                "-y",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=1.5:sample_rate=48000",
                "-ac",
                "2",
                "-c:a",
                "aac",
                str(m4a),
            ]
        )
    )
    jobs.append(
        lambda: run_ffmpeg(
            [
                "-y",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=1",
                "-f",
                "lavfi",
                "-i",
                "color=c=red:s=32x32:d=1",
                "-map",
                "0",
                "-map",
                "1",
                "-frames:v",
                "1",
                "-c:a",
                "libmp3lame",
                "-c:v",
                "mjpeg",
                "-disposition:v",
                "attached_pic",
                str(cover),
            ]
        )
    )
    jobs.append(
        lambda: run_ffmpeg(
            [
                "-y",
                "-f",
                "lavfi",
                "-i",
                "aevalsrc='if(between(t,1,2),0.8*sin(2*PI*440*t),0)':s=48000:d=3",
                str(beep),
            ]
        )
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(videos["25"].read_bytes()[:3000])  # cut before the moov atom at the end
    text = root / "notes.mp4"
    text.write_text("these are meeting notes, not a video\n")
    return MediaSet(root, videos, mkv, vfr, wav, m4a, cover, truncated, text, beep)


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own default probe cache, never the user's ~/.cache."""
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("PREFECT_LIPSYNC_CACHE_DIR", str(cache_dir))
    return cache_dir


@pytest.fixture
def process_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcessLog]:
    bin_dir = tmp_path / "counting-bin"
    bin_dir.mkdir()
    log = tmp_path / "processes.log"
    for tool in ("ffprobe", "ffmpeg"):
        real = shutil.which(tool)
        assert real is not None, f"{tool} must be installed for the media tests"
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\nexec "{real}" "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    yield ProcessLog(log)
