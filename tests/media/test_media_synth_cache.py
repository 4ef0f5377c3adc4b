"""Synthetic media kept by the command that made it (PREFECT_LIPSYNC_SYNTH_CACHE): the same card, tone,
speech or transform is made by ffmpeg once per cache folder and copied after; off unless asked for."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.media import synth
from prefect_lipsync.media.probe import probe


def no_process(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a process ran for a file already in the cache")


def test_the_same_media_is_made_once_per_cache_folder_and_given_as_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "synth"
    monkeypatch.setenv(synth.SYNTH_CACHE.env, str(cache))
    card = synth.make_talking_card(tmp_path / "a" / "card.mp4", duration=1.0, size=(160, 96))
    tone = synth.make_tone(tmp_path / "a" / "tone.wav", duration=1.0, frequency=300)
    speech = synth.speak("hello there", tmp_path / "a" / "hello.wav")
    assert len(list(cache.iterdir())) == 3
    with monkeypatch.context() as patched:  # the same commands elsewhere: no ffmpeg, no espeak-ng
        patched.setattr(synth, "run_ffmpeg", no_process)
        patched.setattr(synth.subprocess, "run", no_process)
        card_again = synth.make_talking_card(tmp_path / "b" / "other.mp4", duration=1.0, size=(160, 96))
        tone_again = synth.make_tone(tmp_path / "b" / "t.wav", duration=1.0, frequency=300)
        speech_again = synth.speak("hello there", tmp_path / "b" / "hi.wav")
    for made, again in ((card, card_again), (tone, tone_again), (speech, speech_again)):
        assert again.read_bytes() == made.read_bytes()
        assert again.stat().st_nlink == 1  # a copy: a test that cuts its file short leaves the cache whole
    assert probe(card_again, cache=None).duration == pytest.approx(1.0, abs=0.1)
    # A copy edited in place changes nothing kept: the next one is whole again.
    with card_again.open("r+b") as edited:
        edited.truncate(100)
    third = synth.make_talking_card(tmp_path / "c" / "card.mp4", duration=1.0, size=(160, 96))
    assert third.read_bytes() == card.read_bytes()
    # Another setting, another format or another input is another file, made by ffmpeg.
    synth.make_tone(tmp_path / "d" / "tone.wav", duration=1.0, frequency=301)
    m4a = synth.make_tone(tmp_path / "d" / "tone.m4a", duration=1.0, frequency=300)
    assert [stream.codec for stream in probe(m4a, cache=None).audio] == ["aac"]
    other_source = shutil.copy(tone, tmp_path / "d" / "source.wav")
    synth.make_tone(Path(other_source), duration=0.5, frequency=300)  # the same path, other bytes
    synth.make_timecoded_clip(tmp_path / "e" / "one.mov", duration=1.0)
    assert len(list(cache.iterdir())) == 3 + 2 + 1 + 2  # timecoded: its card, then the copy with a timecode
    assert not list(tmp_path.rglob(".*.wav")) and not list(tmp_path.rglob(".*.mp4"))  # no temp file left


def test_without_the_setting_every_file_is_made_by_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(synth.SYNTH_CACHE.env, raising=False)
    runs: list[object] = []
    real = synth.run_ffmpeg

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "run_ffmpeg", counted)
    for name in ("one.wav", "two.wav"):
        synth.make_tone(tmp_path / name, duration=0.5, frequency=300)
    assert len(runs) == 2
