"""The emulator's render cache (PREFECT_LIPSYNC_EMULATOR_RENDER_CACHE): a request rendered once per
cache folder, by the content of its inputs, whatever their paths; off unless asked for."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.emulator import render as render_module
from prefect_lipsync.emulator import render_cache
from prefect_lipsync.emulator.render import probe_source, render
from prefect_lipsync.runware.models import Sync3Request

VIDEO_UUID = "11111111-1111-4111-8111-111111111111"


def request(**settings: Any) -> Sync3Request:
    fields: dict[str, Any] = {
        "model": "sync:3@0",
        "inputs": {"video": VIDEO_UUID, "audio": "https://example.test/a.wav"},
    }
    if settings:
        fields["settings"] = settings
    return Sync3Request.model_validate(fields)


def rendered(card: Path, dub: Path, output: Path, req: Sync3Request) -> Path:
    return render(
        req, video=card, source=probe_source(card), audio=dub, segment_audio=[], output=output, timeout=120
    )


def no_ffmpeg(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("ffmpeg ran for a request already in the cache")


def test_the_same_request_on_the_same_bytes_is_rendered_once_per_cache_folder(
    tmp_path: Path, card: Path, tone880: Path, two_tone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "renders"
    monkeypatch.setenv(render_cache.ENV, str(cache))
    first = rendered(card, tone880, tmp_path / "one" / "out.mp4", request())
    assert len(list(cache.glob("*.mp4"))) == 1
    # Another emulator's copies of the same files (other paths, other names): no ffmpeg, the same file.
    other = tmp_path / "other"
    other.mkdir()
    card_copy, dub_copy = shutil.copy(card, other / "v.mp4"), shutil.copy(tone880, other / "d.wav")
    with monkeypatch.context() as patched:
        patched.setattr(render_module, "run_stream", no_ffmpeg)
        second = rendered(Path(card_copy), Path(dub_copy), tmp_path / "two" / "out.mp4", request())
    assert second.read_bytes() == first.read_bytes()
    # Another dub or another setting is another rendering.
    third = rendered(card, two_tone, tmp_path / "three" / "out.mp4", request())
    fourth = rendered(card, tone880, tmp_path / "four" / "out.mp4", request(syncMode="bounce"))
    assert third.read_bytes() != first.read_bytes() and fourth.read_bytes() != first.read_bytes()
    assert len(list(cache.glob("*.mp4"))) == 3
    assert not list(tmp_path.rglob(".render-*"))  # no temp file left behind by a hit


def test_without_the_cache_folder_every_request_is_rendered(
    tmp_path: Path, card: Path, tone880: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(render_cache.ENV, raising=False)
    rendered(card, tone880, tmp_path / "one.mp4", request())
    with monkeypatch.context() as patched:
        patched.setattr(render_module, "run_stream", no_ffmpeg)
        with pytest.raises(AssertionError, match="ffmpeg ran"):
            rendered(card, tone880, tmp_path / "two.mp4", request())
    assert not (tmp_path / "two.mp4").exists()
