"""The planner on real media made with ffmpeg: frames, the documented example, audio ops, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from prefect_lipsync.manifest import load_and_plan
from prefect_lipsync.media import synth
from prefect_lipsync.media.audio_ops import render_audio_op
from prefect_lipsync.media.ffmpeg_runner import run_process
from prefect_lipsync.media.probe import probe
from prefect_lipsync.runware.models import Sync3Request

RATES = ["24", "25", "30000/1001", "50", "60"]
# (start frame, end frame) of each line: intended frames the planned segments must land in.
FRAME_SPANS = [(5, 20), (31, 44), (52, 70)]


def frame_times(video: Path) -> list[Fraction]:
    """Presentation time of every video frame, as ffprobe reports it."""
    done = run_process(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "json",
            str(video),
        ],
        timeout=60,
        path=video,
    )
    return [Fraction(f["pts_time"]) for f in json.loads(done.stdout)["frames"]]


def shown_at(times: list[Fraction], t: Fraction) -> int:
    """Index of the frame on screen at time t: the last one that started at or before t."""
    return max(i for i, start in enumerate(times) if start <= t)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.make_tone(tmp_path_factory.mktemp("tone") / "tone.wav", duration=10.0)


@pytest.mark.slow
@pytest.mark.parametrize("rate", RATES)
def test_planned_segments_land_on_the_intended_frames_of_a_real_video(
    rate: str, tmp_path: Path, tone: Path
) -> None:
    fps = Fraction(rate)
    video = synth.make_talking_card(tmp_path / "v.mp4", duration=3.0, fps=rate, size=(160, 90), audio=False)
    nominal = math.ceil(fps)
    lines = []
    for n, (k1, k2) in enumerate(FRAME_SPANS):
        # start as SMPTE (frames of the video), end in seconds a third of a frame late; the audio
        # crop is the slot's length rounded up to the millisecond, so the slot keeps its end frame.
        start = f"00:00:{k1 // nominal:02d}:{k1 % nominal:02d}"
        end = float(round((Fraction(k2) + Fraction(1, 3)) / fps, 6))
        crop = math.ceil(Fraction(k2 - k1) / fps * 1000) / 1000
        lines.append(
            f'      - {{id: l{n}, start: "{start}", end: {end}, audio: {tone}, audio_start: 0, audio_end: {crop}}}'
        )
    manifest = write(
        tmp_path / "m.yaml",
        "version: 1\nvideo: v.mp4\ndefaults: {min_segment: 0.1}\nlanguages:\n  es:\n    lines:\n"
        + "\n".join(lines)
        + "\n",
    )
    plan = load_and_plan(manifest, audio_ops_dir=tmp_path / "ops")
    assert plan.jobs[0].audio_ops == [] and plan.jobs[0].warnings == []
    times = frame_times(video)
    segments = plan.jobs[0].request.to_wire()["settings"]["segments"]
    assert len(segments) == len(FRAME_SPANS)
    for seg, (k1, k2) in zip(segments, FRAME_SPANS, strict=True):
        assert shown_at(times, Fraction(repr(seg["startTime"]))) == k1, (rate, seg)
        assert shown_at(times, Fraction(repr(seg["endTime"]))) == k2, (rate, seg)
        assert seg["audioEndTime"] <= 10.0


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documented example manifest, with every file it names generated (video scaled to 160x90)."""
    root = tmp_path_factory.mktemp("example")
    synth.make_talking_card(root / "media" / "source.mp4", duration=8.0, fps="25", size=(160, 90))
    synth.speak("Hola a todos", root / "es" / "l001.wav", voice="es")
    synth.make_tone(root / "es" / "take2.wav", duration=5.0)
    synth.make_tone(root / "de" / "full_dub.wav", duration=8.0)
    synth.speak("Ciao", root / "it" / "001.wav", voice="it")
    synth.speak("Arrivederci", root / "it" / "002.wav", voice="it")
    write(
        root / "it.srt",
        "1\n00:00:01,250 --> 00:00:02,750\n[anna] Ciao\n\n2\n00:00:05,120 --> 00:00:06,880\nArrivederci\n",
    )
    write(
        root / "manifest.yaml",
        """version: 1
video: media/source.mp4
name: promo-q3
defaults:
  sync_mode: cut_off
  merge_gap: 0.25
  min_segment: 0.5
  max_tempo: 1.10
speakers:
  anna: {point: {frame: 30, x: 80, y: 42}}
languages:
  es:
    lines:
      - {id: l001, start: 1.00, end: 3.52, audio: es/l001.wav, speaker: anna, text: "Hola"}
      - {id: l002, start: "00:00:04.040", end: 6.2, audio: es/take2.wav, audio_start: 1.5, audio_end: 3.7}
  de: {audio: de/full_dub.wav}
  fr: {speech: {text: "Bonjour ...", voice: auto}}
  it: {subtitles: it.srt, audio: "it/{index:03d}.wav"}
""",
    )
    return root


@pytest.mark.slow
def test_the_documented_example_plans_as_described(example: Path) -> None:
    plan = load_and_plan(example / "manifest.yaml", price_per_second=0.13, audio_ops_dir=example / "ops")
    jobs = {job.language: job for job in plan.jobs}
    assert list(jobs) == ["es", "de", "fr", "it"]
    video_uri = (example / "media" / "source.mp4").as_uri()
    point = {"coordinates": [80.0, 42.0], "frameNumber": 30}
    for job in plan.jobs:
        wire = job.request.to_wire()
        assert Sync3Request.model_validate(wire).to_wire() == wire
        assert wire["inputs"]["video"] == video_uri
        assert wire["settings"]["activeSpeakerDetection"] == point
        assert job.output_name == f"promo-q3.{job.language}.mp4"

    l001 = probe(example / "es" / "l001.wav").duration
    es = jobs["es"].request.to_wire()["settings"]["segments"]
    # l001: espeak's audio is shorter than 1.00-3.52, so the slot shrinks to the audio's length.
    assert es[0]["startTime"] == 1.0 and es[0]["audio"] == (example / "es" / "l001.wav").as_uri()
    assert abs(es[0]["endTime"] - (1.0 + l001)) <= 0.04 and es[0]["audioEndTime"] <= l001
    # l002: a crop of a longer take; 2.2 s of audio in a 2.16 s slot takes 0.04 s of the free time after it.
    assert es[1] == {
        "startTime": 4.04,
        "endTime": 6.24,
        "audio": (example / "es" / "take2.wav").as_uri(),
        "audioStartTime": 1.5,
        "audioEndTime": 3.7,
    }
    de = jobs["de"].request.to_wire()
    assert de["inputs"]["audio"] == (example / "de" / "full_dub.wav").as_uri()
    assert de["settings"]["syncMode"] == "cut_off" and "segments" not in de["settings"]
    fr = jobs["fr"].request.to_wire()
    assert (
        fr["speech"] == {"text": "Bonjour ...", "voice": "auto"} and fr["settings"]["syncMode"] == "cut_off"
    )
    it = jobs["it"].request.to_wire()["settings"]["segments"]
    assert [s["audio"] for s in it] == [(example / "it" / f"00{i}.wav").as_uri() for i in (1, 2)]
    assert [s["startTime"] for s in it] == [
        1.24,
        5.12,
    ]  # 1.25 s is mid-frame at 25 fps: frame 31 starts at 1.24
    assert jobs["it"].segment_lines == [["1"], ["2"]]
    assert plan.estimated_seconds == pytest.approx(4 * 8.0, abs=0.1)
    assert plan.estimated_cost_usd == pytest.approx(plan.estimated_seconds * 0.13, abs=1e-3)


@pytest.mark.slow
def test_the_plan_command_prints_the_wire_payloads_as_json(example: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prefect_lipsync.cli", "plan", str(example / "manifest.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    assert {"jobs", "estimated_seconds", "estimated_cost_usd"} <= set(data)
    for job in data["jobs"]:
        assert {"language", "request", "warnings"} <= set(job)
        Sync3Request.model_validate(job["request"])
        assert all(
            urlsplit(ref).scheme == "file" for ref in Sync3Request.model_validate(job["request"]).media_refs()
        )
    table = subprocess.run(
        [sys.executable, "-m", "prefect_lipsync.cli", "plan", str(example / "manifest.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert table.returncode == 0 and "promo-q3.it.mp4" in table.stdout and "USD" in table.stdout


@pytest.mark.slow
def test_a_planned_tempo_op_renders_to_the_file_the_request_names(tmp_path: Path) -> None:
    synth.make_talking_card(tmp_path / "v.mp4", duration=4.0, fps="25", size=(160, 90), audio=False)
    synth.make_tone(tmp_path / "long.wav", duration=1.6)
    synth.make_tone(tmp_path / "next.wav", duration=0.8)
    manifest = write(
        tmp_path / "m.yaml",
        "version: 1\nvideo: v.mp4\nlanguages:\n  es:\n    lines:\n"
        "      - {id: a, start: 1.0, end: 2.0, audio: long.wav}\n"
        "      - {id: b, start: 2.5, end: 3.3, audio: next.wav}\n",
    )
    plan = load_and_plan(manifest, audio_ops_dir=tmp_path / "ops")
    [planned] = plan.jobs[0].audio_ops
    seg, following = plan.jobs[0].request.to_wire()["settings"]["segments"]
    assert seg["audio"] == planned.output_uri and planned.op.tempo == pytest.approx(1.6 / 1.5, abs=1e-4)
    rendered = render_audio_op(planned.op, Path(planned.output_path).parent)
    assert rendered.as_uri() == seg["audio"]
    assert probe(rendered).duration >= seg["audioEndTime"]
    assert seg["endTime"] <= following["startTime"]  # it fits before the next line
    assert seg["endTime"] - seg["startTime"] >= seg["audioEndTime"] - seg["audioStartTime"]  # and plays whole
