"""Tiny generated media for the quality checks: a clean lip-sync output and one broken copy per fault.

Everything is made once per session from a synthetic talking card and espeak-ng speech; every
broken output is the clean one with exactly one thing wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.media.synth import make_talking_card, mouth_box, speak
from prefect_lipsync.quality.streams import probe_streams

SIZE = (320, 180)
DURATION = 5.0
LINES = (
    ("Hola a todos, bienvenidos.", 0.3),
    ("Esta es una prueba de doblaje.", 2.6),
)


@dataclass(frozen=True)
class Scenario:
    source: Path
    clean: Path
    dubs: tuple[Path, ...]
    payload: dict[str, Any]
    segments: tuple[tuple[float, float], ...]
    audio_duration: float


def _integrated_lufs(path: Path) -> float:
    done = run_ffmpeg(["-i", str(path), "-af", "ebur128=framelog=verbose", "-f", "null", "-"], timeout=60)
    summary = done.stderr.decode().rsplit("Summary:", 1)[1]
    match = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    assert match
    return float(match.group(1))


def _ffmpeg(*args: str) -> None:
    run_ffmpeg(["-y", *args], timeout=60)


def _build(root: Path) -> Scenario:
    source = make_talking_card(root / "source.mp4", duration=DURATION, size=SIZE)
    dubs: list[Path] = []
    segments: list[dict[str, Any]] = []
    spans: list[tuple[float, float]] = []
    for i, (text, start) in enumerate(LINES):
        raw = speak(text, root / f"line{i}_raw.wav", voice="es", speed_wpm=190)
        # Normalise each line to -23 LUFS so a clean output meets the loudness target.
        gain = -23.0 - _integrated_lufs(raw)
        dub = root / f"line{i}.wav"
        _ffmpeg("-i", str(raw), "-af", f"volume={gain:.2f}dB", "-ar", "48000", str(dub))
        length = min(probe_streams(dub).duration, 2.2)
        end = round(start + length, 2)
        length = round(end - start, 2)
        dubs.append(dub)
        spans.append((start, end))
        segments.append(
            {
                "startTime": start,
                "endTime": end,
                "audio": dub.as_uri(),
                "audioStartTime": 0,
                "audioEndTime": length,
            }
        )
    # The clean output: the source picture re-encoded, each line's audio at its segment, silence elsewhere.
    parts = []
    for i, (start, end) in enumerate(spans):
        delay = round(start * 1000)
        parts.append(f"[{i + 1}:a]atrim=0:{end - start:.3f},adelay={delay}:all=1[d{i}]")
    mix = "".join(f"[d{i}]" for i in range(len(spans)))
    graph = ";".join([*parts, f"{mix}amix=inputs={len(spans)}:normalize=0,apad,atrim=0:{DURATION}[a]"])
    clean = root / "clean.mp4"
    inputs = [a for dub in dubs for a in ("-i", str(dub))]
    _ffmpeg(
        "-i",
        str(source),
        *inputs,
        "-filter_complex",
        graph,
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "16",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        str(clean),
    )
    payload = {
        "taskType": "videoInference",
        "model": "sync:3@0",
        "inputs": {"video": source.as_uri()},
        "settings": {"segments": segments},
    }
    return Scenario(source, clean, tuple(dubs), payload, tuple(spans), DURATION)


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return _build(tmp_path_factory.mktemp("quality-media"))


def _variant(scenario: Scenario, name: str, *args: str) -> Path:
    out = scenario.clean.parent / f"{name}.mp4"
    _ffmpeg("-i", str(scenario.clean), *args, str(out))
    return out


_X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "16")


def make_mouth_moved(scenario: Scenario, *, outside_too: bool) -> Path:
    """The clean output with the mouth taken from 0.2 s later (as a lip-sync would move it); optionally
    with a patch painted outside the face as well."""
    x1, y1, x2, y2 = mouth_box(*SIZE)
    graph = f"[1:v]crop={x2 - x1}:{y2 - y1}:{x1}:{y1}[m];[0:v][m]overlay={x1}:{y1}:shortest=1"
    if outside_too:
        graph += ",drawbox=x=10:y=10:w=60:h=40:color=white:t=fill"
    out = scenario.clean.parent / f"mouth_moved{'_outside' if outside_too else ''}.mp4"
    _ffmpeg(
        "-i",
        str(scenario.clean),
        "-ss",
        "0.2",
        "-i",
        str(scenario.clean),
        "-filter_complex",
        graph + "[v]",
        "-map",
        "[v]",
        "-map",
        "0:a",
        *_X264,
        "-c:a",
        "copy",
        str(out),
    )
    return out


def make_broken(scenario: Scenario, fault: str) -> Path:
    """The clean output with one fault."""
    seg2_start, seg2_end = scenario.segments[1]
    if fault == "black_second":
        return _variant(
            scenario,
            fault,
            "-vf",
            "drawbox=color=black:t=fill:enable='between(t,1,2)'",
            *_X264,
            "-c:a",
            "copy",
        )
    if fault == "frozen_tail":
        return _variant(
            scenario,
            fault,
            "-vf",
            "trim=end=3.5,tpad=stop_mode=clone:stop_duration=1.5",
            *_X264,
            "-c:a",
            "copy",
        )
    if fault == "muted_segment":
        return _variant(
            scenario,
            fault,
            "-c:v",
            "copy",
            "-af",
            f"volume=0:enable='between(t,{seg2_start - 0.1},{seg2_end + 0.1})'",
            "-c:a",
            "aac",
        )
    if fault == "audio_delay_200ms":
        return _variant(
            scenario,
            fault,
            "-c:v",
            "copy",
            "-af",
            f"adelay=200:all=1,atrim=0:{scenario.audio_duration}",
            "-c:a",
            "aac",
        )
    if fault == "wrong_size":
        return _variant(scenario, fault, "-vf", "scale=640:360", *_X264, "-c:a", "copy")
    if fault == "no_audio":
        return _variant(scenario, fault, "-c:v", "copy", "-an")
    if fault == "truncated":
        whole = _variant(scenario, "faststart", "-c", "copy", "-movflags", "+faststart")
        out = whole.with_name("truncated.mp4")
        data = whole.read_bytes()
        out.write_bytes(data[: int(len(data) * 0.6)])
        return out
    if fault == "not_video":
        out = scenario.clean.parent / "not_video.mp4"
        out.write_text("This is a text file with a video's name.\n" * 50)
        return out
    raise ValueError(fault)


@pytest.fixture(scope="session")
def broken(scenario: Scenario) -> Callable[[str], Path]:
    """`broken(fault)`: the clean output with that one fault (made once per session)."""
    made: dict[str, Path] = {}

    def get(fault: str) -> Path:
        if fault not in made:
            made[fault] = make_broken(scenario, fault)
        return made[fault]

    return get


@pytest.fixture(scope="session")
def mouth_moved(scenario: Scenario) -> Callable[[bool], Path]:
    """`mouth_moved(outside_too)`: an output whose mouth moved (and optionally more)."""
    return lambda outside_too: make_mouth_moved(scenario, outside_too=outside_too)
