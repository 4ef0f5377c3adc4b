"""What the emulator renders: the source's picture, the audio laid out exactly as requested."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from prefect_lipsync.emulator.render import (
    Clip,
    Original,
    atempo_chain,
    crf_for,
    plan_audio,
    probe_source,
    render,
)
from prefect_lipsync.runware.models import Sync3Request

VIDEO_UUID = "11111111-1111-4111-8111-111111111111"
AUDIO_URL = "https://example.test/a.wav"


def request(**fields: Any) -> Sync3Request:
    return Sync3Request.model_validate({"model": "sync:3@0", "inputs": {"video": VIDEO_UUID}, **fields})


def do_render(
    tmp_path: Path,
    card: Path,
    req: Sync3Request,
    *,
    audio: Path | None = None,
    segments: list[Path] | None = None,
    name: str = "out",
) -> Path:
    source = probe_source(card)
    ext = {"MP4": "mp4", "WEBM": "webm", "MOV": "mov"}[req.output_format]
    return render(
        req,
        video=card,
        source=source,
        audio=audio,
        segment_audio=segments or [],
        output=tmp_path / f"{name}.{ext}",
        timeout=120,
    )


def streams(info: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


# --------------------------------------------------------------------------- the plan (pure)


def test_plan_places_segments_with_the_original_audio_between_them() -> None:
    req = request(
        settings={
            "segments": [
                {"startTime": 2.0, "endTime": 2.5, "audio": AUDIO_URL},
                {
                    "startTime": 0.5,
                    "endTime": 1.0,
                    "audio": AUDIO_URL,
                    "audioStartTime": 1.0,
                    "audioEndTime": 1.5,
                },
            ]
        }
    )
    pieces = plan_audio(req, 3.0, [4.0, 2.0])
    assert pieces == [
        Original(0.0, 0.5),
        Clip(1, 1.0, 1.5, 0.5, "cut_off"),
        Original(1.0, 2.0),
        Clip(0, 0.0, 4.0, 0.5, "cut_off"),
        Original(2.5, 3.0),
    ]
    assert sum(p.length for p in pieces) == pytest.approx(3.0)


def test_plan_clamps_segments_to_the_video_and_crops_to_the_file() -> None:
    req = request(
        settings={
            "segments": [
                {
                    "startTime": 2.5,
                    "endTime": 4.0,
                    "audio": AUDIO_URL,
                    "audioStartTime": 0.5,
                    "audioEndTime": 9.0,
                },
                {"startTime": 5.0, "endTime": 6.0, "audio": AUDIO_URL},
            ]
        }
    )
    assert plan_audio(req, 3.0, [2.0, 2.0]) == [Original(0.0, 2.5), Clip(0, 0.5, 2.0, 0.5, "cut_off")]


def test_plan_of_a_whole_track_fits_it_to_the_video_by_sync_mode() -> None:
    req = request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}, settings={"syncMode": "bounce"})
    assert plan_audio(req, 3.0, [1.2]) == [Clip(0, 0.0, 1.2, 3.0, "bounce")]


def test_atempo_chain_stays_in_ffmpeg_range_and_multiplies_to_the_factor() -> None:
    for factor in (0.1, 0.5, 1.0, 3.3, 250.0):
        chain = atempo_chain(factor)
        assert all(0.5 <= f <= 100 for f in chain)
        product = 1.0
        for f in chain:
            product *= f
        assert product == pytest.approx(factor)


def test_higher_output_quality_means_lower_crf() -> None:
    for fmt in ("MP4", "WEBM"):
        assert crf_for(fmt, 20) > crf_for(fmt, 95) > crf_for(fmt, 99)


# --------------------------------------------------------------------------- rendered files


def test_output_keeps_duration_size_and_fps_of_the_source(
    tmp_path: Path, card: Path, tone880: Path, ffprobe: Callable[[Path], dict[str, Any]]
) -> None:
    out = do_render(tmp_path, card, request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}), audio=tone880)
    src, got = ffprobe(card), ffprobe(out)
    src_v, got_v = streams(src, "video")[0], streams(got, "video")[0]
    assert (got_v["width"], got_v["height"]) == (src_v["width"], src_v["height"])
    assert Fraction(got_v["r_frame_rate"]) == Fraction(src_v["r_frame_rate"])
    assert int(got_v["nb_frames"]) == int(src_v["nb_frames"])
    assert float(got["format"]["duration"]) == pytest.approx(float(src["format"]["duration"]), abs=0.05)
    assert float(streams(got, "audio")[0]["duration"]) == pytest.approx(3.0, abs=0.05)


def test_segment_audio_plays_in_its_window_and_the_original_outside(
    tmp_path: Path, card: Path, two_tone: Path, audio_probe: Any
) -> None:
    # Crop the 1320 Hz second half of two_tone into 1.0-2.0 s of the video.
    req = request(
        settings={
            "segments": [
                {
                    "startTime": 1.0,
                    "endTime": 2.0,
                    "audio": AUDIO_URL,
                    "audioStartTime": 1.0,
                    "audioEndTime": 2.0,
                }
            ]
        }
    )
    sound = audio_probe(do_render(tmp_path, card, req, segments=[two_tone]))
    assert sound.duration == pytest.approx(3.0, abs=0.05)
    assert sound.dominant_hz(0.1, 0.9) == pytest.approx(220, abs=10)
    assert sound.dominant_hz(1.1, 1.9) == pytest.approx(1320, abs=10)
    assert sound.dominant_hz(2.1, 2.9) == pytest.approx(220, abs=10)


def test_a_segment_on_a_video_without_audio_has_silence_around_it(
    tmp_path: Path, mute_card: Path, tone880: Path, audio_probe: Any
) -> None:
    req = request(settings={"segments": [{"startTime": 0.5, "endTime": 1.5, "audio": AUDIO_URL}]})
    sound = audio_probe(do_render(tmp_path, mute_card, req, segments=[tone880]))
    assert sound.rms(0.0, 0.45) < 1e-3 and sound.rms(1.6, 3.0) < 1e-3
    assert sound.dominant_hz(0.6, 1.4) == pytest.approx(880, abs=10)


@pytest.mark.parametrize("mode", ["cut_off", "silence"])
def test_short_audio_is_followed_by_silence_and_long_audio_is_cut(
    mode: str, tmp_path: Path, card: Path, tone880: Path, long_tone: Path, audio_probe: Any
) -> None:
    settings = {"syncMode": mode}
    short = audio_probe(
        do_render(
            tmp_path,
            card,
            request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}, settings=settings),
            audio=tone880,
            name="short",
        )
    )
    assert short.dominant_hz(0.1, 1.9) == pytest.approx(880, abs=10)
    assert short.rms(2.1, 3.0) < 1e-3
    long = audio_probe(
        do_render(
            tmp_path,
            card,
            request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}, settings=settings),
            audio=long_tone,
            name="long",
        )
    )
    assert long.duration == pytest.approx(3.0, abs=0.05)
    assert long.dominant_hz(2.0, 2.95) == pytest.approx(660, abs=10)


def test_bounce_plays_the_audio_forward_then_backward(
    tmp_path: Path, card: Path, two_tone: Path, audio_probe: Any
) -> None:
    # two_tone is 440 Hz then 1320 Hz, 2 s; bounced over 3 s: 440, 1320, then 1320 again (reversed).
    req = request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}, settings={"syncMode": "bounce"})
    sound = audio_probe(do_render(tmp_path, card, req, audio=two_tone))
    assert sound.dominant_hz(0.1, 0.9) == pytest.approx(440, abs=10)
    assert sound.dominant_hz(1.1, 1.9) == pytest.approx(1320, abs=10)
    assert sound.dominant_hz(2.1, 2.9) == pytest.approx(1320, abs=10)
    assert sound.rms(2.1, 2.9) > 0.05  # a full-level tone (sine amplitude 1/8)


def test_bounce_of_a_short_clip_returns_to_the_start(
    tmp_path: Path, card: Path, two_tone: Path, audio_probe: Any
) -> None:
    # A segment crop of 0.5-1.5 s (440 then 1320) bounced over a 2.5 s window: 440,1320 | 1320,440 | 440
    req = request(
        settings={
            "syncMode": "bounce",
            "segments": [
                {
                    "startTime": 0.5,
                    "endTime": 3.0,
                    "audio": AUDIO_URL,
                    "audioStartTime": 0.5,
                    "audioEndTime": 1.5,
                }
            ],
        }
    )
    sound = audio_probe(do_render(tmp_path, card, req, segments=[two_tone]))
    assert sound.dominant_hz(0.55, 0.95) == pytest.approx(440, abs=10)
    assert sound.dominant_hz(1.05, 1.95) == pytest.approx(1320, abs=10)
    assert sound.dominant_hz(2.05, 2.95) == pytest.approx(440, abs=10)


def test_remap_stretches_the_audio_over_the_whole_video(
    tmp_path: Path, card: Path, two_tone: Path, audio_probe: Any
) -> None:
    # 2 s stretched to 3 s: the switch from 440 to 1320 Hz moves from 1.0 s to 1.5 s; the pitch stays.
    req = request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}, settings={"syncMode": "remap"})
    sound = audio_probe(do_render(tmp_path, card, req, audio=two_tone))
    assert sound.dominant_hz(0.1, 1.35) == pytest.approx(440, abs=10)
    assert sound.dominant_hz(1.65, 2.9) == pytest.approx(1320, abs=10)
    assert sound.rms(2.5, 2.95) > 0.05


def test_speech_is_spoken_into_the_output(tmp_path: Path, card: Path, audio_probe: Any) -> None:
    req = request(speech={"text": "hello world", "voice": "auto"})
    sound = audio_probe(do_render(tmp_path, card, req))
    assert sound.duration == pytest.approx(3.0, abs=0.05)
    assert sound.rms(0.0, 1.0) > 0.01  # espeak-ng spoke
    assert sound.dominant_hz(0.2, 0.8) != pytest.approx(220, abs=10)  # not the original tone


@pytest.mark.parametrize(
    ("fmt", "format_name", "vcodecs", "acodec"),
    [
        ("MP4", "mp4", {"h264"}, "aac"),
        ("MOV", "mov", {"h264"}, "aac"),
        ("WEBM", "webm", {"vp9", "vp8"}, "opus"),
    ],
)
def test_each_output_format_has_its_container_and_codecs(
    fmt: str,
    format_name: str,
    vcodecs: set[str],
    acodec: str,
    tmp_path: Path,
    card: Path,
    tone880: Path,
    ffprobe: Callable[[Path], dict[str, Any]],
) -> None:
    req = request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}, outputFormat=fmt)
    info = ffprobe(do_render(tmp_path, card, req, audio=tone880))
    assert format_name in info["format"]["format_name"].split(",")
    if fmt == "MOV":
        assert info["format"]["tags"].get("major_brand", "").strip() == "qt"
    assert streams(info, "video")[0]["codec_name"] in vcodecs
    assert streams(info, "audio")[0]["codec_name"] == acodec
    assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=0.06)


def test_lower_output_quality_gives_a_smaller_file(tmp_path: Path, card: Path, tone880: Path) -> None:
    sizes = [
        do_render(
            tmp_path,
            card,
            request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}, outputQuality=q),
            audio=tone880,
            name=f"q{q}",
        )
        .stat()
        .st_size
        for q in (20, 99)
    ]
    assert sizes[0] < sizes[1]


def test_an_odd_sized_source_keeps_its_size(
    tmp_path: Path, tone880: Path, ffprobe: Callable[[Path], dict[str, Any]]
) -> None:
    from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg

    odd = tmp_path / "odd.mp4"
    source = "testsrc=size=161x91:rate=30:duration=2"
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            source,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv444p",
            str(odd),
        ]
    )
    out = do_render(tmp_path, odd, request(inputs={"video": VIDEO_UUID, "audio": AUDIO_URL}), audio=tone880)
    video = streams(ffprobe(out), "video")[0]
    assert (video["width"], video["height"], video["r_frame_rate"]) == (161, 91, "30/1")


@pytest.mark.parametrize("cropped", [True, False], ids=["audio_start_end", "whole_file"])
def test_one_audio_file_in_two_segments_plays_in_both_windows(
    cropped: bool, tmp_path: Path, card: Path, two_tone: Path, audio_probe: Any
) -> None:
    # The same take cut into two lines: the same file (the same path) feeds both segments.
    first: dict[str, Any] = {"startTime": 0.2, "endTime": 1.0, "audio": AUDIO_URL}
    second: dict[str, Any] = {"startTime": 1.8, "endTime": 2.6, "audio": AUDIO_URL}
    if cropped:
        first |= {"audioStartTime": 0.0, "audioEndTime": 0.8}
        second |= {"audioStartTime": 1.1, "audioEndTime": 1.9}
    req = request(settings={"segments": [first, second]})
    sound = audio_probe(do_render(tmp_path, card, req, segments=[two_tone, two_tone]))
    assert sound.duration == pytest.approx(3.0, abs=0.05)
    assert sound.dominant_hz(0.3, 0.9) == pytest.approx(440, abs=10)
    assert sound.dominant_hz(1.2, 1.7) == pytest.approx(220, abs=10)  # the original between them
    # Cropped: the 1320 Hz half; whole file: it starts again from its 440 Hz beginning.
    assert sound.dominant_hz(1.9, 2.5) == pytest.approx(1320 if cropped else 440, abs=10)


def test_the_video_itself_as_the_audio_of_a_segment_renders(
    tmp_path: Path, card: Path, audio_probe: Any
) -> None:
    # The source's own audio feeds the original stretches and a segment: one input, split.
    req = request(settings={"segments": [{"startTime": 1.0, "endTime": 2.0, "audio": AUDIO_URL}]})
    sound = audio_probe(do_render(tmp_path, card, req, segments=[card]))
    assert sound.dominant_hz(0.1, 0.9) == pytest.approx(220, abs=10)
    assert sound.dominant_hz(1.1, 1.9) == pytest.approx(220, abs=10)
