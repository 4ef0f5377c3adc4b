"""A process probes each version of a file once for the checks: a batch's shared source and an output
checked, pictured and reported are asked for many times. Real ffprobe on generated files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.media import synth
from prefect_lipsync.quality import streams
from prefect_lipsync.quality.streams import probe_streams


@pytest.fixture
def ffprobe_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files ffprobe really ran on (the real ffprobe still runs)."""
    runs: list[str] = []
    real = streams.run_ffprobe_json

    def counted(path: Any, **kwargs: Any) -> dict[str, Any]:
        runs.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(streams, "run_ffprobe_json", counted)
    return runs


def test_an_unchanged_file_is_probed_once_and_a_replaced_one_again(
    tmp_path: Path, ffprobe_runs: list[str]
) -> None:
    clip = synth.make_tone(tmp_path / "dub.wav", duration=1.0)
    first = probe_streams(clip)
    again = probe_streams(clip)
    assert again == first and first.duration == pytest.approx(1.0, abs=0.01)
    assert ffprobe_runs == [str(clip)]

    # A new version put in its place (as every writer here does: temp file, then rename).
    longer = synth.make_tone(tmp_path / "longer.wav", duration=2.0)
    os.replace(longer, clip)
    assert probe_streams(clip).duration == pytest.approx(2.0, abs=0.01)
    assert ffprobe_runs == [str(clip), str(clip)]


def test_the_same_file_by_another_path_is_not_probed_again_and_keeps_the_path_asked(
    tmp_path: Path, ffprobe_runs: list[str]
) -> None:
    clip = synth.make_tone(tmp_path / "dub.wav", duration=1.0)
    link = tmp_path / "link.wav"
    link.symlink_to(clip)
    assert probe_streams(clip).path == clip
    facts = probe_streams(link)
    assert facts.path == link and facts.duration == pytest.approx(1.0, abs=0.01)
    assert ffprobe_runs == [str(clip)]


def test_a_file_ffprobe_cannot_read_is_not_remembered(tmp_path: Path, ffprobe_runs: list[str]) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    for _ in range(2):
        with pytest.raises(streams.MediaError):
            probe_streams(broken)
    assert len(ffprobe_runs) == 2
