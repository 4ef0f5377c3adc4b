"""speech_in_segments judges the output against what was submitted: a dub's own pause is not a finding,
a silence where the dub speaks is. Outputs are rendered by the emulator (real ffmpeg), the faithful case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prefect_lipsync.emulator.render import probe_source, render
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.media.synth import make_talking_card, speak
from prefect_lipsync.quality import QualityReport, check_output
from prefect_lipsync.quality.audio_checks import speaking_seconds
from prefect_lipsync.runware.models import Sync3Request

SIZE = (320, 180)
PAUSE_S = 0.8


class Media:
    def __init__(self, root: Path) -> None:
        self.source = make_talking_card(root / "source.mp4", duration=5.0, size=SIZE)
        first = speak("Hola amigos.", root / "first.wav", voice="es", speed_wpm=190)
        second = speak(
            "Buenos días a todos, y gracias por venir.", root / "second.wav", voice="es", speed_wpm=190
        )
        # One take with a 0.8 s pause between its two sentences, as a dubbing studio delivers it.
        self.dub = root / "dub-with-pause.wav"
        run_ffmpeg(
            [
                "-y",
                "-i",
                str(first),
                "-i",
                str(second),
                "-filter_complex",
                f"[0:a]apad=pad_dur={PAUSE_S}[a];[a][1:a]concat=n=2:v=0:a=1,aresample=48000",
                str(self.dub),
            ]
        )
        self.first_s = float(_seconds(first))
        self.dub_s = float(_seconds(self.dub))


def _seconds(path: Path) -> float:
    from prefect_lipsync.media.probe import probe

    return probe(path, cache=None).duration


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(tmp_path_factory.mktemp("dub-pauses"))


def _render(media: Media, payload: dict[str, Any], out: Path) -> Path:
    request = Sync3Request.model_validate(payload)
    segments = request.settings.segments if request.settings else None
    return render(
        request,
        video=media.source,
        source=probe_source(media.source),
        audio=None if segments else media.dub,
        segment_audio=[media.dub] * len(segments or []),
        output=out,
        timeout=120,
    )


def _check(media: Media, output: Path, payload: dict[str, Any]) -> QualityReport:
    return check_output(output, source=media.source, request_payload=payload)


def whole_track(media: Media) -> dict[str, Any]:
    return {"model": "sync:3@0", "inputs": {"video": media.source.as_uri(), "audio": media.dub.as_uri()}}


def one_segment(media: Media) -> dict[str, Any]:
    end = round(0.3 + media.dub_s, 2)
    return {
        "model": "sync:3@0",
        "inputs": {"video": media.source.as_uri()},
        "settings": {"segments": [{"startTime": 0.3, "endTime": end, "audio": media.dub.as_uri()}]},
    }


def test_the_dub_holds_a_pause_longer_than_the_silence_threshold(media: Media) -> None:
    from prefect_lipsync.quality.avsync import decode_pcm16k

    pcm = decode_pcm16k(media.dub)
    pause = (media.first_s + 0.05, media.first_s + PAUSE_S - 0.05)
    assert speaking_seconds(pcm, *pause, floor_db=-50) == 0.0
    assert speaking_seconds(pcm, 0.0, media.first_s, floor_db=-50) > 0.5


@pytest.mark.parametrize("shape", [whole_track, one_segment], ids=["full_dub_track", "segment"])
def test_a_faithful_output_of_a_dub_with_a_pause_passes_speech_in_segments(
    shape: Any, media: Media, tmp_path: Path
) -> None:
    payload = shape(media)
    report = _check(media, _render(media, payload, tmp_path / "out.mp4"), payload)
    check = report.check("speech_in_segments")
    assert check is not None and check.status == "pass", check
    assert any("in the submitted audio too" in note for note in report.notes), report.notes


def test_a_silence_where_the_dub_speaks_still_fails_and_only_that_silence_is_named(
    media: Media, tmp_path: Path
) -> None:
    payload = one_segment(media)
    faithful = _render(media, payload, tmp_path / "faithful.mp4")
    # 0.8 s of the second sentence lost (the output is silent there, the dub speaks).
    lost_from = 0.3 + media.first_s + PAUSE_S + 0.4
    lost_to = lost_from + 0.8
    assert lost_to < 0.3 + media.dub_s - 0.2
    lost = tmp_path / "lost.mp4"
    run_ffmpeg(
        [
            "-y",
            "-i",
            str(faithful),
            "-c:v",
            "copy",
            "-af",
            f"volume=0:enable='between(t,{lost_from:.3f},{lost_to:.3f})'",
            "-c:a",
            "aac",
            str(lost),
        ]
    )
    report = _check(media, lost, payload)
    check = report.check("speech_in_segments")
    assert check is not None and check.status == "fail"
    # The lost stretch is the one finding; the dub's own pause is still excused.
    [where] = check.at
    assert where.start == pytest.approx(lost_from, abs=0.1)
    assert where.end == pytest.approx(lost_to, abs=0.1)
    assert "where the submitted audio speaks" in check.message
    assert any("in the submitted audio too" in note for note in report.notes), report.notes


def test_speaking_seconds_counts_only_what_is_clearly_above_the_floor() -> None:
    rate = 16000
    quiet = np.full(rate, 10 ** (-45 / 20), dtype=np.float32)  # 5 dB above a -50 dB floor: not speech
    loud = np.full(rate // 2, 0.1, dtype=np.float32)
    signal = np.concatenate([quiet, loud])
    assert speaking_seconds(signal, 0.0, 1.0, floor_db=-50) == 0.0
    assert speaking_seconds(signal, 0.0, 1.5, floor_db=-50) == pytest.approx(0.5, abs=0.011)
