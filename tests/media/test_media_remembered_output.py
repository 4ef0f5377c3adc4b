"""ffmpeg output remembered per process (`run_ffmpeg_remembered`): a source's frames or a dub's samples are
decoded once while the file is unchanged, again once it changes, and the memory it takes stays bounded."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prefect_lipsync.media import ffmpeg_runner
from prefect_lipsync.media.synth import make_talking_card, make_tone
from prefect_lipsync.quality.avsync import decode_pcm16k
from prefect_lipsync.quality.frames import sample_frames


@pytest.fixture
def ffmpeg_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Each ffmpeg command run from here on, with an empty memory to start from."""
    monkeypatch.setattr(ffmpeg_runner, "_remembered", type(ffmpeg_runner._remembered)())
    monkeypatch.setattr(ffmpeg_runner, "_remembered_bytes", 0)
    runs: list[list[str]] = []
    real = ffmpeg_runner.run_ffmpeg

    def counted(args: Any, **kwargs: Any) -> Any:
        runs.append(list(args))
        return real(args, **kwargs)

    monkeypatch.setattr(ffmpeg_runner, "run_ffmpeg", counted)
    return runs


def test_a_files_frames_and_samples_are_decoded_once_while_it_is_unchanged(
    tmp_path: Path, ffmpeg_runs: list[list[str]]
) -> None:
    card = make_talking_card(tmp_path / "card.mp4", duration=1.0, size=(160, 96))
    dub = make_tone(tmp_path / "dub.wav", duration=1.0, frequency=300)
    first = sample_frames(card, [0.1, 0.5], size=(160, 96), fps=Fraction(25), gray=False, width=80)
    again = sample_frames(card, [0.1, 0.5], size=(160, 96), fps=Fraction(25), gray=False, width=80)
    pcm, pcm_again = decode_pcm16k(dub), decode_pcm16k(dub)
    assert len(ffmpeg_runs) == 2  # one for the frames, one for the samples
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)) and len(first) == 2
    assert np.array_equal(pcm, pcm_again) and pcm.size == 16000
    # Other times are another command; the same file rewritten (another tone) is decoded again.
    sample_frames(card, [0.2], size=(160, 96), fps=Fraction(25))
    make_tone(tmp_path / "dub.wav", duration=0.5, frequency=300)
    assert decode_pcm16k(dub).size == 8000
    assert len(ffmpeg_runs) == 4


def test_what_is_remembered_stays_under_its_bound_the_oldest_going_first(
    tmp_path: Path, ffmpeg_runs: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dubs = [make_tone(tmp_path / f"{i}.wav", duration=1.0, frequency=300 + i) for i in range(3)]
    monkeypatch.setattr(ffmpeg_runner, "REMEMBERED_STDOUT_MAX_BYTES", 70000)  # room for two of them
    for dub in dubs:
        decode_pcm16k(dub)
    assert ffmpeg_runner._remembered_bytes == 2 * 32000  # 1 s of 16 kHz 16-bit mono each: the first went
    decode_pcm16k(dubs[2])
    assert len(ffmpeg_runs) == 3
    decode_pcm16k(dubs[0])
    assert len(ffmpeg_runs) == 4
    # An output over the largest kept is decoded each time.
    monkeypatch.setattr(ffmpeg_runner, "REMEMBERED_STDOUT_LARGEST", 31999)
    decode_pcm16k(dubs[1])
    decode_pcm16k(dubs[1])
    assert len(ffmpeg_runs) == 6
    # A missing file is ffmpeg's to report, naming it, not the memory's.
    os.unlink(dubs[1])
    with pytest.raises(Exception, match=r"1\.wav"):
        decode_pcm16k(dubs[1])
