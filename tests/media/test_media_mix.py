"""The final mix: a dubbed video's dub, inside its windows, over a music-and-effects stem, at a layout.

The "dubbed" file stands for the service's output: the source's own sound (a 220 Hz "original
dialogue") between the dubbed lines, the dub (880 Hz) inside them. Each tone is measured per channel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # --import-mode=importlib: tests/tone_meter.py

from tone_meter import Channels

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg, run_ffprobe_json
from prefect_lipsync.media.mix import gate_commands, merged_windows, mix_over_stem
from prefect_lipsync.media.synth import make_master, make_talking_card, make_tone

WINDOWS = [(0.5, 1.2), (1.8, 2.5)]
ORIGINAL_HZ, DUB_HZ, ME_HZ = 220, 880, 1500
HEARD, UNHEARD = 0.02, 0.002  # amplitudes: present (-34 dBFS and up), absent (-54 dBFS and down)


@pytest.fixture(scope="module")
def dubbed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s service output: 220 Hz outside WINDOWS, 880 Hz inside them, stereo AAC in MP4."""
    root = tmp_path_factory.mktemp("mix")
    card = make_talking_card(root / "card.mp4", duration=3.0, size=(320, 180), tone_hz=ORIGINAL_HZ)
    inside = "+".join(f"between(t,{a},{b})" for a, b in WINDOWS)
    out = root / "dubbed.mp4"
    run_ffmpeg(
        [
            "-y",
            "-i",
            str(card),
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={DUB_HZ}:sample_rate=48000:duration=3",
            "-filter_complex",
            f"[0:a]volume=0:enable='{inside}'[o];[1:a]volume=0:enable='not({inside})'[d];"
            "[o][d]amix=inputs=2:normalize=0,aformat=channel_layouts=stereo[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            str(out),
        ]
    )
    return out


def test_windows_are_sorted_and_joined_and_each_opens_and_shuts_the_gate() -> None:
    assert merged_windows([(2.0, 3.0), (0.5, 1.0), (1.0, 1.5), (2.5, 2.8), (4.0, 4.0)]) == [
        (0.5, 1.5),
        (2.0, 3.0),
    ]
    commands = gate_commands([(0.5, 1.0)])
    assert "0.500000-1.000000 [enter]" in commands and "volume 1" in commands and "volume 0" in commands


def test_a_51_stem_gives_51_with_the_dub_in_the_centre_and_the_original_dialogue_gone(
    dubbed: Path, tmp_path: Path
) -> None:
    master = make_master(tmp_path / "master.mp4", audio=[(ORIGINAL_HZ, "5.1"), (ME_HZ, "5.1")])
    out = mix_over_stem(
        dubbed,
        master,
        tmp_path / "out.mp4",
        windows=WINDOWS,
        layout="5.1",
        channels=6,
        sample_rate=48000,
        stem_stream=2,
    )
    sound = Channels.of(out)
    assert sound.layout == "5.1" and sound.duration == pytest.approx(3.0, abs=0.05)
    for a, b in WINDOWS:  # under the dubbed lines: the dub in the centre, the stem everywhere
        assert sound.tone("FC", DUB_HZ, a + 0.05, b - 0.05) > HEARD
        for channel in ("FL", "FR", "BL", "BR"):
            assert sound.tone(channel, DUB_HZ, a + 0.05, b - 0.05) < UNHEARD
            assert sound.tone(channel, ME_HZ, a + 0.05, b - 0.05) > HEARD
    for a, b in [(0.0, 0.45), (1.25, 1.75), (2.55, 3.0)]:  # between them: the stem alone
        assert sound.tone("FC", ME_HZ, a, b) > HEARD
        assert sound.tone("FC", ORIGINAL_HZ, a, b) < UNHEARD and sound.tone("FC", DUB_HZ, a, b) < UNHEARD
    # The picture is the service's, copied.
    video = [s for s in run_ffprobe_json(out)["streams"] if s["codec_type"] == "video"]
    original = [s for s in run_ffprobe_json(dubbed)["streams"] if s["codec_type"] == "video"]
    assert [(v["codec_name"], v["nb_frames"]) for v in video] == [
        (v["codec_name"], v["nb_frames"]) for v in original
    ]


def test_a_stereo_stem_file_in_place_of_the_dubbed_file_gives_stereo_dub_left_and_right(
    dubbed: Path, tmp_path: Path
) -> None:
    work = tmp_path / "dubbed.mp4"
    work.write_bytes(dubbed.read_bytes())
    stem = make_tone(tmp_path / "me.wav", duration=3.0, frequency=ME_HZ)
    mix_over_stem(work, stem, work, windows=WINDOWS, layout="stereo", channels=2, sample_rate=44100)
    sound = Channels.of(work)
    assert sound.layout == "stereo"
    assert run_ffprobe_json(work)["streams"][1]["sample_rate"] == "44100"
    for channel in ("FL", "FR"):
        assert sound.tone(channel, DUB_HZ, 0.6, 1.1) > HEARD and sound.tone(channel, ME_HZ, 0.6, 1.1) > HEARD
        assert sound.tone(channel, ORIGINAL_HZ, 1.3, 1.7) < UNHEARD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dubbed.mp4", "me.wav"]  # no temp file left
