"""probe(): every MediaInfo field on real files, and a clear error for each kind of bad path."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from fractions import Fraction
from functools import partial
from pathlib import Path

import pytest
from media_testkit import RATES, SIZE, MediaSet

from prefect_lipsync.media import MediaError
from prefect_lipsync.media.probe import (
    MediaNotFound,
    NotAFile,
    NotMediaFile,
    NoVideoStream,
    is_variable_frame_rate,
    media_info_from_ffprobe,
    probe,
    require_video,
)


@pytest.mark.parametrize("name", list(RATES))
def test_video_fields_are_exact_at_each_common_rate(media: MediaSet, name: str) -> None:
    path = media.videos[name]
    info = probe(path, cache=None)
    fps = Fraction(RATES[name])
    assert info.path == str(path)
    assert info.format_name.startswith("mov,mp4")
    assert info.size_bytes == path.stat().st_size
    assert info.video is not None
    video = info.video
    assert (video.codec, video.width, video.height) == ("h264", *SIZE)
    assert video.fps == fps and isinstance(video.fps, Fraction)
    assert video.avg_fps == fps
    assert video.variable_frame_rate is False
    # testsrc2 makes ceil(1 s * fps) frames: 30 at 30000/1001 (lasting 1.001 s).
    expected_frames = -(-fps.numerator // fps.denominator)
    assert video.frame_count == expected_frames
    assert video.duration == pytest.approx(float(expected_frames / fps), abs=1e-3)
    assert info.duration == pytest.approx(video.duration, abs=1e-3)
    [audio] = info.audio
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 48000, 1)
    assert audio.duration == pytest.approx(1.0, abs=0.03)
    assert info.has_audio


def test_ntsc_fps_is_kept_as_the_fraction_30000_over_1001_not_a_float(media: MediaSet) -> None:
    video = require_video(probe(media.videos["30000/1001"], cache=None))
    assert video.fps == Fraction(30000, 1001)
    assert video.model_dump(mode="json")["fps"] == "30000/1001"


def test_matroska_without_frame_count_gets_duration_from_tag_and_frames_from_rate(media: MediaSet) -> None:
    info = probe(media.mkv_ntsc, cache=None)
    video = require_video(info)
    assert info.format_name == "matroska,webm"
    assert video.fps == Fraction(30000, 1001)
    assert video.duration == pytest.approx(1.001, abs=1e-3)  # from the DURATION tag
    assert video.frame_count == 30  # round(1.001 * 30000/1001)
    assert info.audio == []


def test_variable_frame_rate_video_is_flagged_and_counts_real_frames(media: MediaSet) -> None:
    video = require_video(probe(media.vfr, cache=None))
    assert video.fps == 50  # r_frame_rate: the rate every timestamp fits on
    assert video.avg_fps is not None and 35 < video.avg_fps < 40  # 75 frames over 1.98 s
    assert video.variable_frame_rate is True
    assert video.frame_count == 75  # 50 at 50 fps, then 25 at 25 fps


def test_audio_only_files_have_audio_streams_and_no_video(media: MediaSet) -> None:
    wav = probe(media.wav, cache=None)
    assert wav.video is None
    assert wav.format_name == "wav"
    assert wav.duration == pytest.approx(1.5, abs=1e-3)
    [stream] = wav.audio
    assert (stream.codec, stream.sample_rate, stream.channels) == ("pcm_s16le", 44100, 1)
    assert stream.duration == pytest.approx(1.5, abs=1e-3)
    m4a = probe(media.m4a, cache=None)
    assert [(a.codec, a.sample_rate, a.channels) for a in m4a.audio] == [("aac", 48000, 2)]


def test_cover_art_is_not_taken_for_a_video_stream(media: MediaSet) -> None:
    info = probe(media.cover_mp3, cache=None)
    assert info.video is None
    assert [a.codec for a in info.audio] == ["mp3"]


def test_require_video_rejects_audio_only_with_a_sentence_naming_the_file(media: MediaSet) -> None:
    info = probe(media.wav, cache=None)
    with pytest.raises(NoVideoStream, match="has no video stream \\(audio-only\\?\\)") as caught:
        require_video(info)
    assert caught.value.path == str(media.wav)
    assert str(media.wav) in str(caught.value)


def test_missing_file_says_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(MediaNotFound, match="file not found") as caught:
        probe(missing)
    assert caught.value.path == str(missing)
    assert isinstance(caught.value, MediaError)


def test_broken_symlink_says_file_not_found(tmp_path: Path) -> None:
    link = tmp_path / "link.mp4"
    link.symlink_to(tmp_path / "gone.mp4")
    with pytest.raises(MediaNotFound, match="file not found"):
        probe(link)


def test_directory_is_refused_as_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotAFile, match="is a directory") as caught:
        probe(tmp_path)
    assert caught.value.path == str(tmp_path)


@pytest.mark.parametrize("which", ["truncated", "text_as_mp4"])
def test_unreadable_file_is_not_a_media_file(media: MediaSet, which: str) -> None:
    path = getattr(media, which)
    with pytest.raises(NotMediaFile, match="not a media file ffprobe can read") as caught:
        probe(path)
    assert caught.value.path == str(path)
    assert "moov atom not found" in caught.value.stderr_tail  # ffprobe's own words are kept


def test_empty_file_is_not_a_media_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(NotMediaFile, match="not a media file ffprobe can read"):
        probe(empty)


def test_file_with_only_subtitles_is_not_a_media_file(tmp_path: Path) -> None:
    srt = tmp_path / "lines.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n")
    with pytest.raises(NotMediaFile, match="found no audio or video stream"):
        probe(srt)


@pytest.fixture
def http_root(media: MediaSet) -> Iterator[str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(media.root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_is_probed_over_http_and_never_cached(
    media: MediaSet, http_root: str, _private_cache_dir: Path
) -> None:
    url = f"{http_root}/{media.videos['25'].name}"
    info = probe(url)
    assert info.path == url
    assert require_video(info).fps == 25
    assert not (_private_cache_dir / "probe.json").exists()


def test_missing_url_is_not_a_media_file(http_root: str) -> None:
    with pytest.raises(NotMediaFile, match="404"):
        probe(f"{http_root}/missing.mp4")


def test_a_copy_gets_its_own_path_in_the_answer(media: MediaSet, tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    shutil.copy(media.videos["24"], copy)
    assert probe(copy).path == str(copy)


# ---- the pure parser ---------------------------------------------------------------------------


def test_missing_r_frame_rate_falls_back_to_avg_frame_rate() -> None:
    data = {
        "format": {"duration": "2.0", "format_name": "x"},
        "streams": [
            {
                "index": 0,
                "codec_type": "video",
                "codec_name": "h264",
                "width": 4,
                "height": 2,
                "r_frame_rate": "0/0",
                "avg_frame_rate": "25/1",
            },
        ],
    }
    video = require_video(media_info_from_ffprobe("f", data))
    assert video.fps == 25 and video.frame_count == 50


def test_video_stream_without_any_rate_is_a_clear_error() -> None:
    data = {
        "format": {},
        "streams": [{"codec_type": "video", "r_frame_rate": "0/0", "avg_frame_rate": "0/0"}],
    }
    with pytest.raises(MediaError, match="reports no frame rate"):
        media_info_from_ffprobe("f", data)


def test_duration_falls_back_to_the_longest_stream() -> None:
    data = {
        "format": {"duration": "N/A"},
        "streams": [
            {
                "index": 0,
                "codec_type": "audio",
                "codec_name": "aac",
                "sample_rate": "48000",
                "channels": 2,
                "duration": "3.5",
            },
            {
                "index": 1,
                "codec_type": "audio",
                "codec_name": "aac",
                "sample_rate": "48000",
                "channels": 2,
                "tags": {"DURATION-eng": "00:00:04.250000000"},
            },
        ],
    }
    info = media_info_from_ffprobe("f", data, size_bytes=7)
    assert info.duration == 4.25
    assert info.size_bytes == 7
    assert [a.duration for a in info.audio] == [3.5, 4.25]


@pytest.mark.parametrize(
    ("fps", "avg", "duration", "vfr"),
    [
        (Fraction(30), Fraction(30000, 1001), 2.0, False),  # 0.06 frame apart over 2 s: constant
        (Fraction(30), Fraction(30000, 1001), 3600.0, True),  # 108 frames missing over an hour
        (Fraction(25), Fraction(5000, 201), 4.02, False),  # last frame half a frame long: constant
        (Fraction(50), Fraction(1250, 33), 1.98, True),
        (Fraction(25), None, 10.0, False),
        (Fraction(25), Fraction(2501, 100), None, False),
        (Fraction(25), Fraction(24), None, True),
    ],
)
def test_variable_frame_rate_tolerance_is_one_frame_over_the_stream(
    fps: Fraction, avg: Fraction | None, duration: float | None, vfr: bool
) -> None:
    assert is_variable_frame_rate(fps, avg, duration) is vfr
