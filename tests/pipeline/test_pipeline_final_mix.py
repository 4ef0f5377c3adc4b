"""The final mix, end to end on the job runner (real emulator over loopback, real ffmpeg): each dub is
delivered over the master's music-and-effects stem, at the master's layout; the checks judged the dub."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # --import-mode=importlib: tests/tone_meter.py

from tone_meter import Channels

from prefect_lipsync.emulator import run_emulator
from prefect_lipsync.media.synth import face_box, make_master, make_tone
from prefect_lipsync.pipeline import JobJournal, JobRunner, RunSettings, plan_run, run_jobs
from prefect_lipsync.runware.client import RunwareClient

pytestmark = pytest.mark.slow

SIZE = (320, 180)
ORIGINAL_HZ, DUB_HZ, ME_HZ = 220, 880, 1500
HEARD, UNHEARD = 0.02, 0.002  # amplitudes: present (-34 dBFS and up), absent (-54 dBFS and down)


def write_manifest(folder: Path, languages: dict[str, Any], stem: Any) -> Path:
    data = {
        "version": 1,
        "name": "mix",
        "video": "master.mp4",
        "speakers": {"host": {"box": list(face_box(*SIZE))}},
        "music_and_effects": stem,
        "languages": languages,
    }
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def run(manifest: Path, out: Path) -> tuple[Any, Any]:
    settings = RunSettings()
    plan = await asyncio.to_thread(plan_run, manifest, settings)
    with run_emulator(latency=0.1) as base_url:
        journal = JobJournal.for_endpoint(str(base_url))
        async with RunwareClient(
            api_key=SecretStr("k"), base_url=str(base_url), upload_cache=journal.uploads
        ) as client:
            runner = JobRunner(client, settings, out_dir=out / plan.name, journal=journal, offline=True)
            (output,) = await run_jobs(runner, plan)
    return plan, output


def between(windows: list[tuple[float, float]], end: float) -> list[tuple[float, float]]:
    """The stretches outside `windows` longer than 0.2 s, each shrunk by 0.05 s at both ends."""
    edges = [0.0, *[t for w in windows for t in w], end]
    pairs = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
    return [(a + 0.05, b - 0.05) for a, b in pairs if b - a > 0.2]


async def test_two_lines_of_one_take_are_delivered_over_the_51_m_and_e_stream_in_51(
    tmp_path: Path, cache_dir: Path
) -> None:
    # A master as studios have it: stream 1 the full 5.1 mix (here a 220 Hz "original dialogue"),
    # stream 2 the 5.1 music and effects (1500 Hz). The dub: one take (880 Hz) cut into two lines.
    make_master(
        tmp_path / "master.mp4", audio=[(ORIGINAL_HZ, "5.1"), (ME_HZ, "5.1")], duration=4.0, size=SIZE
    )
    make_tone(tmp_path / "take.wav", duration=2.0, frequency=DUB_HZ)
    lines = [
        {"id": "a", "start": 0.52, "end": 1.32, "audio": "take.wav", "audio_start": 0.0, "audio_end": 0.8},
        {"id": "b", "start": 2.2, "end": 3.0, "audio": "take.wav", "audio_start": 1.0, "audio_end": 1.8},
    ]
    manifest = write_manifest(tmp_path, {"es": {"lines": lines}}, {"stream": 2})
    plan, output = await run(manifest, tmp_path / "out")
    assert output.error is None and output.verdict in {"pass", "warn"}, output
    [job] = plan.jobs
    assert job.final_mix is not None
    windows = job.final_mix.dub_windows
    assert len(windows) == 2

    sound = Channels.of(Path(output.output))
    assert sound.layout == "5.1" and sound.duration == pytest.approx(4.0, abs=0.1)
    for a, b in windows:  # under the lines: the dub in the centre, over the M&E
        assert sound.tone("FC", DUB_HZ, a + 0.05, b - 0.05) > HEARD
        assert sound.tone("FC", ME_HZ, a + 0.05, b - 0.05) > HEARD
        assert sound.tone("FL", DUB_HZ, a + 0.05, b - 0.05) < UNHEARD
    for a, b in between(windows, 4.0):  # between the lines: the M&E, and not the original dialogue
        for channel in sound.names:
            if channel != "LFE":
                assert sound.tone(channel, ME_HZ, a, b) > HEARD, (channel, a, b)
            assert sound.tone(channel, ORIGINAL_HZ, a, b) < UNHEARD, (channel, a, b)
    report = json.loads(Path(output.report).read_text())
    assert any(
        "Delivered audio: the dub over the music-and-effects stem (stream 2" in n for n in report["notes"]
    )
    speech = next(c for c in report["checks"] if c["name"] == "speech_in_segments")
    assert speech["status"] == "pass"


async def test_a_stereo_stem_file_under_a_whole_dub_track_gives_stereo_with_no_original_sound(
    tmp_path: Path, cache_dir: Path
) -> None:
    make_master(tmp_path / "master.mp4", audio=[(ORIGINAL_HZ, "stereo")], duration=3.0, size=SIZE)
    make_tone(tmp_path / "dub.wav", duration=3.0, frequency=DUB_HZ)
    make_tone(tmp_path / "me.wav", duration=3.0, frequency=ME_HZ)
    manifest = write_manifest(tmp_path, {"de": {"audio": "dub.wav"}}, "me.wav")
    _, output = await run(manifest, tmp_path / "out")
    assert output.error is None and output.output, output
    sound = Channels.of(Path(output.output))
    assert sound.layout == "stereo"
    for channel in ("FL", "FR"):
        assert sound.tone(channel, DUB_HZ, 0.2, 2.8) > HEARD and sound.tone(channel, ME_HZ, 0.2, 2.8) > HEARD
        assert sound.tone(channel, ORIGINAL_HZ, 0.2, 2.8) < UNHEARD
