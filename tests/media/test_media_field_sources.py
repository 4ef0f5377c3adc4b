"""probe() on media as localization teams receive it: variable frame rates, rotation, start timecodes."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from prefect_lipsync.media import synth
from prefect_lipsync.media.cache import FORMAT_VERSION, FileKey, ProbeCache
from prefect_lipsync.media.probe import display_rotation, probe, require_video, source_timecode

F = Fraction


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One of each kind, read-only for the tests (each test writes only in its own tmp_path)."""
    root = tmp_path_factory.mktemp("field-media")
    return {
        "dropped": synth.make_dropped_frames_clip(
            root / "dropped.mp4", duration=10.0, fps="30", size=(160, 90)
        ),
        "rate_change": synth.make_rate_change_clip(root / "rate.mp4", size=(160, 90)),
        "rotated": synth.make_rotated_clip(root / "phone.mp4", shown=(90, 160), rotation=90, duration=1.0),
        "master_mov": synth.make_timecoded_clip(root / "master.mov", timecode="01:00:00:00", duration=1.0),
        "master_mkv": synth.make_timecoded_clip(root / "master.mkv", timecode="10:00:00:00", duration=1.0),
        "plain": synth.make_talking_card(root / "plain.mp4", duration=1.0, size=(160, 90)),
    }


def test_a_clip_with_dropped_frames_lasts_as_long_as_its_timestamps_say(field: dict[str, Path]) -> None:
    video = require_video(probe(field["dropped"], cache=None))
    assert video.fps == 30 and video.frame_count == 255  # 8.5 s by frame count / nominal rate
    assert video.duration == 10.0 and video.variable_frame_rate
    clock = video.clock()
    assert clock.end == 10 and clock.count == 255
    assert clock.start_of(3) == F(6, 30) and clock.start_of(254) == F(299, 30)


def test_a_clip_whose_rate_changes_is_timed_by_its_frames_not_by_the_guessed_rate(
    field: dict[str, Path],
) -> None:
    video = require_video(probe(field["rate_change"], cache=None))
    assert video.fps == 24  # ffprobe's guess from the first seconds: 150 / 24 = 6.25 s
    assert video.frame_count == 150 and video.variable_frame_rate
    clock = video.clock()
    microsecond = F(1, 10**6)  # the concat's time base
    assert abs(clock.end - 6) <= microsecond
    assert abs(clock.start_of(120) - 5) <= microsecond  # the first frame at 30 fps
    assert abs(clock.start_of(121) - clock.start_of(120) - F(1, 30)) <= microsecond


def test_a_constant_rate_clip_reads_no_timestamps(field: dict[str, Path]) -> None:
    video = require_video(probe(field["plain"], cache=None))
    assert video.frame_times is None and not video.variable_frame_rate
    assert video.clock().end == 1 and video.clock().count == 25


def test_a_phone_video_stored_turned_reports_its_matrix_and_the_size_people_see(
    field: dict[str, Path],
) -> None:
    video = require_video(probe(field["rotated"], cache=None))
    assert (video.width, video.height) == (160, 90)  # as stored
    assert video.rotation == 90 and video.shown_size == (90, 160)
    assert (video.display_width, video.display_height) == (90, 160)
    assert video.display_matrix is not None and len(video.display_matrix) == 9


@pytest.mark.parametrize(("kind", "timecode"), [("master_mov", "01:00:00:00"), ("master_mkv", "10:00:00:00")])
def test_the_start_timecode_comes_from_the_tmcd_track_or_the_container_tag(
    field: dict[str, Path], kind: str, timecode: str
) -> None:
    assert probe(field[kind], cache=None).timecode == timecode
    assert probe(field["plain"], cache=None).timecode is None


def test_rotation_and_timecode_are_read_from_ffprobe_json_of_either_age() -> None:
    side = {"side_data_list": [{"side_data_type": "Display Matrix", "displaymatrix": "\n00000000: 0 65536 0\n"
            "00000001: -65536 0 0\n00000002: 0 0 1073741824\n", "rotation": -90}]}  # fmt: skip
    assert display_rotation(side) == (270, [0, 65536, 0, -65536, 0, 0, 0, 0, 1073741824])
    assert display_rotation({"tags": {"rotate": "180"}}) == (180, None)  # before side data
    assert display_rotation({}) == (0, None)
    data = {
        "streams": [
            {"codec_type": "video", "tags": {"timecode": "00:59:59:00"}},
            {"codec_type": "data", "codec_tag_string": "tmcd", "tags": {"timecode": "01:00:00;00"}},
        ],
        "format": {"tags": {"TIMECODE": "02:00:00:00"}},
    }
    assert source_timecode(data) == "01:00:00;00"  # the tmcd track first
    assert source_timecode({"format": {"tags": {"timecode": "not a timecode"}}}) is None


def test_a_probe_cache_written_before_these_fields_is_not_read_as_their_shape(
    field: dict[str, Path], tmp_path: Path
) -> None:
    clip = tmp_path / "dropped.mp4"
    clip.write_bytes(field["dropped"].read_bytes())
    key = FileKey.of(clip)
    assert key is not None
    old_info = {"path": str(clip), "duration": 10.0, "video": {"index": 0, "codec": "h264", "width": 160,
                "height": 90, "fps": "30/1", "frame_count": 255, "duration": 10.0}}  # fmt: skip
    entry = {
        "size": key.size,
        "mtime_ns": key.mtime_ns,
        "inode": key.inode,
        "stored_at": 0.0,
        "info": old_info,
    }
    cache_file = tmp_path / "probe.json"
    cache_file.write_text(json.dumps({"version": 1, "entries": {key.path: entry}}))
    assert FORMAT_VERSION > 1
    assert ProbeCache(cache_file).get(key) is None  # probed again, not taken for a clip without timestamps
    probed = probe(clip, cache=ProbeCache(cache_file))
    again = ProbeCache(cache_file).get(key)
    assert again is not None and again.video is not None and again.video.frame_times is not None
    assert again.video.clock() == require_video(probed).clock()
