"""render_audio_op(): crop and speed-up with real ffmpeg, exact lengths, rendered once per content key."""

from __future__ import annotations

import hashlib
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from media_testkit import MediaSet, ProcessLog
from pydantic import ValidationError

from prefect_lipsync.media import MediaError
from prefect_lipsync.media.audio_ops import AudioOp, render_audio_op
from prefect_lipsync.media.hashing import cached_file_sha256, file_sha256
from prefect_lipsync.media.probe import probe


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as handle:
        assert handle.getsampwidth() == 2
        frames = handle.readframes(handle.getnframes())
        rate = handle.getframerate()
        channels = handle.getnchannels()
    samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels)[:, 0].astype(np.float64) / 32768
    return samples, rate


def _tone_span(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """First and last instants (s) where the beep is loud."""
    loud = np.flatnonzero(np.abs(samples) > 0.2)
    return loud[0] / rate, loud[-1] / rate


def test_crop_without_tempo_has_the_exact_length_and_keeps_the_tone_in_place(
    media: MediaSet, tmp_path: Path
) -> None:
    op = AudioOp(source=str(media.beep), start=0.5, end=2.5)
    samples, rate = _read_wav(render_audio_op(op, tmp_path))
    assert rate == 48000
    assert len(samples) == 2 * 48000
    onset, offset = _tone_span(samples, rate)
    assert onset == pytest.approx(0.5, abs=0.002)  # the tone started at 1.0 s in the source
    assert offset == pytest.approx(1.5, abs=0.002)


def test_tempo_shortens_to_length_over_tempo_and_moves_the_tone_by_the_same_factor(
    media: MediaSet, tmp_path: Path
) -> None:
    op = AudioOp(source=str(media.beep), start=0.5, end=2.5, tempo=1.1)
    out = render_audio_op(op, tmp_path)
    samples, rate = _read_wav(out)
    assert op.output_duration == pytest.approx(2.0 / 1.1)
    assert abs(len(samples) - 2.0 / 1.1 * rate) <= 1  # within one sample, far inside one audio frame
    assert probe(out, cache=None).duration == pytest.approx(2.0 / 1.1, abs=1024 / rate)
    onset, offset = _tone_span(samples, rate)
    # atempo works in ~20-40 ms windows: the edges of the tone move by up to one window.
    assert onset == pytest.approx(0.5 / 1.1, abs=0.03)
    assert offset == pytest.approx(1.5 / 1.1, abs=0.03)
    # Pitch is kept: 440 Hz still dominates in the middle of the tone.
    middle = samples[int(0.6 * rate) : int(1.1 * rate)]
    spectrum = np.abs(np.fft.rfft(middle))
    peak_hz = np.argmax(spectrum) * rate / len(middle)
    assert peak_hz == pytest.approx(440, abs=5)


def test_open_end_keeps_the_rest_of_the_source(media: MediaSet, tmp_path: Path) -> None:
    op = AudioOp(source=str(media.beep), start=1.0, tempo=1.05)
    samples, rate = _read_wav(render_audio_op(op, tmp_path))
    assert abs(len(samples) - 2.0 / 1.05 * rate) <= 1


def test_audio_of_a_video_is_resampled_and_remixed_on_request(media: MediaSet, tmp_path: Path) -> None:
    op = AudioOp(
        source=str(media.videos["25"]), start=0.2, end=0.9, tempo=1.08, sample_rate=16000, channels=2
    )
    info = probe(render_audio_op(op, tmp_path), cache=None)
    [audio] = info.audio
    assert (audio.codec, audio.sample_rate, audio.channels) == ("pcm_s16le", 16000, 2)
    assert info.duration == pytest.approx(0.7 / 1.08, abs=1024 / 16000)


def test_same_op_is_rendered_once_and_its_name_holds_the_content_key(
    media: MediaSet, tmp_path: Path, process_log: ProcessLog
) -> None:
    op = AudioOp(source=str(media.beep), start=0.25, end=1.75, tempo=1.02)
    first = render_audio_op(op, tmp_path)
    assert len(process_log.runs("ffmpeg")) == 1
    key = op.content_key(file_sha256(media.beep))
    assert key in first.name and first.suffix == ".wav"
    mtime = first.stat().st_mtime_ns
    process_log.clear()
    again = render_audio_op(op, tmp_path)
    assert again == first
    assert process_log.runs("ffmpeg") == []
    assert first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_key_follows_content_not_the_file_name(media: MediaSet, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.wav"
    shutil.copy(media.beep, renamed)
    a = AudioOp(source=str(media.beep), start=0.5, end=1.0)
    b = AudioOp(source=str(renamed), start=0.5, end=1.0)
    assert render_audio_op(a, tmp_path / "out") == render_audio_op(b, tmp_path / "out")
    with renamed.open("r+b") as handle:  # same size, different content
        handle.seek(-2, 2)
        handle.write(b"\x01\x02")
    assert render_audio_op(b, tmp_path / "out") != render_audio_op(a, tmp_path / "out")


def test_different_params_give_different_outputs(media: MediaSet, tmp_path: Path) -> None:
    ops = [
        AudioOp(source=str(media.beep), start=0.5, end=1.5),
        AudioOp(source=str(media.beep), start=0.5, end=1.5, tempo=1.1),
        AudioOp(source=str(media.beep), start=0.5, end=1.6),
        AudioOp(source=str(media.beep), start=0.5, end=1.5, sample_rate=16000),
    ]
    assert len({render_audio_op(op, tmp_path) for op in ops}) == len(ops)


def test_rendering_is_byte_for_byte_repeatable(media: MediaSet, tmp_path: Path) -> None:
    op = AudioOp(source=str(media.beep), start=0.1, end=0.6, tempo=1.1)
    a = render_audio_op(op, tmp_path / "a").read_bytes()
    b = render_audio_op(op, tmp_path / "b").read_bytes()
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tempo": 1.2}, "tempo"),
        ({"tempo": 0.9}, "tempo"),
        ({"start": -1.0}, "start"),
        ({"start": 2.0, "end": 2.0}, "end"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_ops_are_rejected_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        AudioOp.model_validate({"source": "a.wav", **kwargs})


def test_crop_past_the_end_of_the_source_is_a_clear_error(media: MediaSet, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"crop end 5 s is past the end of the audio \(3 s\)"):
        render_audio_op(AudioOp(source=str(media.beep), start=1.0, end=5.0), tmp_path)
    with pytest.raises(MediaError, match=r"crop start 3.5 s is at or past the end"):
        render_audio_op(AudioOp(source=str(media.beep), start=3.5), tmp_path)


def test_missing_source_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(MediaError, match="file not found") as caught:
        render_audio_op(AudioOp(source=str(missing)), tmp_path)
    assert caught.value.path == str(missing)


def test_source_without_audio_is_refused(media: MediaSet, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="has no audio stream"):
        render_audio_op(AudioOp(source=str(media.mkv_ntsc), end=0.5), tmp_path)


def test_file_sha256_streams_in_chunks_and_matches_hashlib(media: MediaSet) -> None:
    data = media.videos["60"].read_bytes()
    expected = hashlib.sha256(data).hexdigest()
    assert file_sha256(media.videos["60"], chunk_bytes=1000) == expected
    assert file_sha256(media.videos["60"]) == expected
    assert cached_file_sha256(media.videos["60"]) == expected


def test_cached_hash_notices_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    assert cached_file_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two!")
    assert cached_file_sha256(path) == hashlib.sha256(b"two!").hexdigest()
