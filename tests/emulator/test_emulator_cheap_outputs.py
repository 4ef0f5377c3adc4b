"""The emulator's cheap outputs (PREFECT_LIPSYNC_EMULATOR_CHEAP_OUTPUTS): one rendering per request shape,
off unless asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.emulator import cheap_outputs
from prefect_lipsync.emulator.render import probe_source, render
from prefect_lipsync.runware.models import Sync3Request

VIDEO_UUID = "11111111-1111-4111-8111-111111111111"


def request(audio_url: str, **settings: Any) -> Sync3Request:
    fields: dict[str, Any] = {"model": "sync:3@0", "inputs": {"video": VIDEO_UUID, "audio": audio_url}}
    if settings:
        fields["settings"] = settings
    return Sync3Request.model_validate(fields)


def rendered(tmp_path: Path, card: Path, dub: Path, name: str, req: Sync3Request) -> Path:
    return render(
        req,
        video=card,
        source=probe_source(card),
        audio=dub,
        segment_audio=[],
        output=tmp_path / f"{name}.mp4",
        timeout=120,
    )


def test_with_cheap_outputs_a_request_of_a_known_shape_is_a_copy_of_its_first_rendering(
    tmp_path: Path, card: Path, tone880: Path, two_tone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cheap_outputs.ENV, "1")
    first = rendered(tmp_path, card, tone880, "first", request("https://example.test/a.wav"))
    second = rendered(tmp_path, card, two_tone, "second", request("https://example.test/b.wav"))
    assert second.read_bytes() == first.read_bytes()  # the same shape: no ffmpeg, the first's file
    other_shape = request("https://example.test/c.wav", syncMode="bounce")
    third = rendered(tmp_path, card, tone880, "third", other_shape)
    assert third.read_bytes() != first.read_bytes()  # another shape renders


def test_without_cheap_outputs_every_request_is_rendered(
    tmp_path: Path, card: Path, tone880: Path, two_tone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(cheap_outputs.ENV, raising=False)
    first = rendered(tmp_path, card, tone880, "first", request("https://example.test/a.wav"))
    second = rendered(tmp_path, card, two_tone, "second", request("https://example.test/b.wav"))
    assert second.read_bytes() != first.read_bytes()
    assert not (tmp_path / cheap_outputs.SHAPES_DIR).exists()
