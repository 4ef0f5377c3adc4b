"""The planner on media as localization teams receive it (synthetic probes, no file on disk unless said).

Variable frame rates (frame times from timestamps), phone videos turned by a display matrix
(speaker targets on the picture as shown), broadcast masters with a start timecode
(`timecode_start`), segment ends rounded up so no dub tail is cut, and every problem in one pass.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from manifest_testkit import BASE, plan_data, segments, video_info

from prefect_lipsync.manifest import ManifestError, plan_manifest, read_manifest
from prefect_lipsync.manifest.timecode import TimeFormatError, smpte_to_seconds
from prefect_lipsync.media.info import AudioStream, FrameTimes, MediaInfo, VideoStream

F = Fraction


def manifest(lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1, "video": "v.mp4", "languages": {"es": {"lines": lines}}}
    data.update(extra)
    return data


def line(id: str, start: Any, end: Any, audio: str = "a.wav", **kw: Any) -> dict[str, Any]:
    return {"id": id, "start": start, "end": end, "audio": audio, **kw}


def dropped_frames_video(path: str = f"{BASE}/v.mp4") -> MediaInfo:
    """What probe says of a 10 s phone clip at a nominal 30 fps missing frames 3-5 of every 20."""
    pts = [n * 512 for n in range(300) if not 3 <= n % 20 <= 5]
    video = VideoStream(
        index=0,
        codec="h264",
        width=320,
        height=180,
        fps=F(30),
        avg_fps=F(51, 2),
        frame_count=255,
        duration=10.0,
        variable_frame_rate=True,
        frame_times=FrameTimes(time_base=F(1, 15360), pts=pts, end=300 * 512),
    )
    audio = [AudioStream(index=1, codec="aac", sample_rate=48000, channels=1, duration=10.0)]
    return MediaInfo(path=path, duration=10.0, video=video, audio=audio)


def problems_of(exc: pytest.ExceptionInfo[ManifestError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


# ---- variable frame rate -------------------------------------------------------------------------


def test_a_line_near_the_end_of_a_clip_with_dropped_frames_is_planned_whole() -> None:
    # Frame count / nominal rate says 8.5 s: the line at 8.0-9.6 s was cut to 8.0-8.5 s, 1.1 s lost.
    plan = plan_data(manifest([line("l1", 8.0, 9.6)]), audio={"a.wav": 1.6}, video=dropped_frames_video())
    [job] = plan.jobs
    assert segments(plan) == [
        {
            "startTime": 8.0,
            "endTime": 9.6,
            "audio": f"file://{BASE}/a.wav",
            "audioStartTime": 0.0,
            "audioEndTime": 1.6,
        }
    ]
    assert not any("cut" in w or "truncated" in w for w in job.warnings)
    assert any("255 frames over 10 s" in w for w in job.warnings)  # the plan says it is VFR
    assert job.video_duration == 10.0 and plan.estimated_seconds == 10.0


def test_segment_times_land_inside_the_frames_a_variable_rate_clip_really_has() -> None:
    video = dropped_frames_video()
    clock = video.video.clock() if video.video else None
    assert clock is not None
    # 0.15 s falls in the gap of frames 3-5 (0.1-0.2 s): snapped to the frame at 0.2 s, not to 0.15 s.
    plan = plan_data(manifest([line("l1", 0.15, 1.0)]), audio={"a.wav": 0.85}, video=video)
    [seg] = segments(plan)
    assert seg["startTime"] == 0.2
    assert clock.shown_at(F(repr(seg["startTime"]))) == 3
    assert seg["endTime"] - seg["startTime"] >= seg["audioEndTime"] - seg["audioStartTime"]


def test_the_box_track_of_a_variable_rate_clip_has_one_box_per_real_frame() -> None:
    speakers = {"ana": {"box": [10, 10, 60, 60]}, "ben": {"box": [100, 10, 150, 60]}}
    data = manifest(
        [line("a", 1.0, 2.0, speaker="ana"), line("b", 8.0, 9.0, "b.wav", speaker="ben")], speakers=speakers
    )
    plan = plan_data(data, audio={"a.wav": 1.0, "b.wav": 1.0}, video=dropped_frames_video())
    track = plan.jobs[0].request.to_wire()["settings"]["activeSpeakerDetection"]["boundingBoxes"]
    clock = dropped_frames_video().video.clock()  # type: ignore[union-attr]
    assert len(track) == 255  # one per decoded frame, not round(10 s x 30 fps) = 300
    for k, box in enumerate(track):
        at = clock.start_of(k)
        expected = [10, 10, 60, 60] if 1 <= at < 2 else [100, 10, 150, 60] if 8 <= at < 9 else None
        assert box == expected, (k, at)


# ---- segment ends ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", ["24", "25", "30000/1001", "50"])
def test_rounding_to_frames_never_cuts_the_dub_when_the_slot_has_room(fps: str) -> None:
    # Audio lengths and starts that fall between frames, each line with free time after it.
    lengths = [F(1213, 1000), F(877, 1000), F(1505, 1000), F(2011, 1000)]
    starts = [F(51, 100), F(2233, 1000), F(4017, 1000), F(6121, 1000)]
    audio = {f"l{i}.wav": float(n) for i, n in enumerate(lengths)}
    lines = [
        line(f"l{i}", float(s), float(s + n), f"l{i}.wav")
        for i, (s, n) in enumerate(zip(starts, lengths, strict=True))
    ]
    plan = plan_data(manifest(lines), audio=audio, video=video_info(f"{BASE}/v.mp4", fps=fps))
    segs = segments(plan)
    for seg in segs:
        assert seg["endTime"] - seg["startTime"] >= seg["audioEndTime"] - seg["audioStartTime"] - 1e-9, seg
    for a, b in itertools.pairwise(segs):
        assert a["endTime"] <= b["startTime"]


def test_an_end_is_not_rounded_past_the_next_line() -> None:
    # b starts where a's audio ends: a's end stays at b's (snapped) start.
    plan = plan_data(
        manifest([line("a", 1.0, 2.0), line("b", 2.0, 3.0, "b.wav")]), audio={"a.wav": 1.0, "b.wav": 1.0}
    )
    a, b = segments(plan)
    assert a["endTime"] == b["startTime"] == 2.0


# ---- rotation ---------------------------------------------------------------------------------------


def phone_video(path: str = f"{BASE}/v.mp4") -> MediaInfo:
    """A phone video stored 320x180 with a 90 degree display matrix: people see 180x320."""
    stream = VideoStream(
        index=0, codec="h264", width=320, height=180, fps=F(25), frame_count=75, duration=3.0,
        rotation=90, display_width=180, display_height=320,
    )  # fmt: skip
    return MediaInfo(path=path, duration=3.0, video=stream)


def test_a_box_drawn_on_the_portrait_picture_of_a_turned_phone_video_fits() -> None:
    box = [67, 53, 112, 266]  # below y=180: outside the stored picture, inside the one people see
    data = manifest([line("a", 0.5, 2.0, speaker="anna")], speakers={"anna": {"box": box}})
    plan = plan_data(data, audio={"a.wav": 1.5}, video=phone_video())
    assert plan.jobs[0].face_box == tuple(box)
    assert plan.jobs[0].request.to_wire()["settings"]["activeSpeakerDetection"]["boundingBoxes"][0] == box


def test_a_box_outside_the_picture_people_see_is_refused_saying_how_it_is_stored() -> None:
    data = manifest([line("a", 0.5, 2.0, speaker="anna")], speakers={"anna": {"box": [20, 20, 300, 100]}})
    with pytest.raises(ManifestError) as exc:
        plan_data(data, audio={"a.wav": 1.5}, video=phone_video())
    [problem] = problems_of(exc)
    assert "reaches outside the 180x320 video as shown (stored turned by 90 degrees)" in problem
    assert "keep x2 <= 180 and y2 <= 320" in problem


# ---- timecodes ------------------------------------------------------------------------------------


def master(timecode: str | None = "01:00:00:00", fps: str = "25") -> MediaInfo:
    info = video_info(f"{BASE}/v.mp4", duration=4.0, fps=fps)
    return info.model_copy(update={"timecode": timecode})


@pytest.mark.parametrize("start", ["source", "01:00:00:00"])
def test_timecode_start_counts_smpte_times_from_the_masters_timecode(start: str) -> None:
    data = manifest([line("a", "01:00:01:12", "01:00:02:10")], timecode_start=start)
    plan = plan_data(data, audio={"a.wav": 0.9}, video=master())
    [seg] = segments(plan)
    assert seg["startTime"] == 1.48  # 1 s 12 frames at 25 fps
    # Seconds still count from the first frame.
    plan = plan_data(
        manifest([line("a", 1.48, 2.4)], timecode_start=start), audio={"a.wav": 0.9}, video=master()
    )
    assert segments(plan)[0]["startTime"] == 1.48


def test_a_time_past_the_end_of_a_timecoded_master_names_timecode_start() -> None:
    with pytest.raises(ManifestError) as exc:
        plan_data(manifest([line("a", "01:00:01:12", "01:00:02:10")]), audio={"a.wav": 0.9}, video=master())
    [problem] = problems_of(exc)
    assert "field languages.es.lines[0].start" in problem
    assert "the video's own timecode starts at 01:00:00:00" in problem and "timecode_start: source" in problem
    # A master starting at 00:00:00:00 keeps the old behaviour: the line is dropped with a warning.
    plan = plan_data(
        manifest([line("a", 1.0, 2.0), line("b", 9.0, 9.5, "b.wav")]),
        audio={"a.wav": 1.0, "b.wav": 0.5},
        video=master("00:00:00:00"),
    )
    assert [d.line_id for d in plan.jobs[0].dropped_lines] == ["b"]


def test_timecode_start_problems_name_the_key() -> None:
    data = manifest([line("a", "01:00:01:12", "01:00:02:10")], timecode_start="source")
    with pytest.raises(ManifestError) as exc:
        plan_data(data, audio={"a.wav": 0.9}, video=master(None))
    assert any("field timecode_start" in p and "has no start timecode" in p for p in problems_of(exc))
    data = manifest([line("a", "00:59:59:00", "01:00:02:10")], timecode_start="01:00:00:00")
    with pytest.raises(ManifestError) as exc:
        plan_data(data, audio={"a.wav": 0.9}, video=master())
    assert any("'00:59:59:00' is before the start timecode 01:00:00:00" in p for p in problems_of(exc))


def test_drop_frame_labels_that_do_not_exist_are_refused_others_are_exact() -> None:
    ntsc = F(30000, 1001)
    with pytest.raises(TimeFormatError, match="does not exist in drop-frame"):
        smpte_to_seconds("00:01:00;00", ntsc)  # was read as 59.993 s
    with pytest.raises(TimeFormatError, match="labels ;00 to ;03 are skipped"):
        smpte_to_seconds("00:01:00;03", F(60000, 1001))
    assert smpte_to_seconds("00:01:00;02", ntsc) == F(1800, 1) / ntsc  # the minute's first frame: 1800
    assert smpte_to_seconds("00:10:00;00", ntsc) == F(17982) / ntsc  # tenth minutes keep ;00


# ---- every problem in one pass --------------------------------------------------------------------


def test_schema_errors_do_not_hide_the_timing_errors_and_keep_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        """version: 1
video: v.mp4
timecode_start: "01:00:00;00"
languages:
  es:
    lines:
      - {id: a, start: "00:01:00;00", end: 2.0, audio: a.wav}
      - {id: b, start: 3.0, end: 2.5, audio: a.wav}
      - {id: c, start: 4.0, end: 5.0, audio: a.wav, audo: typo}
      - {id: d, start: 6.0, end: 7.0, audio: a.wav}
      - {id: e, start: 6.5, end: 7.5, audio: a.wav}
  de: {speech: {text: ""}}
"""
    )
    loaded, problems = read_manifest(path)
    assert loaded is not None and [pl.id for pl in loaded.lines["es"]] == ["b", "d", "e"]
    assert {p.field for p in problems} >= {"languages.es.lines[0].start", "languages.es.lines[2].audo"}
    media = {
        loaded.resolve("v.mp4"): video_info(loaded.resolve("v.mp4"), fps="30000/1001"),
        loaded.resolve("a.wav"): MediaInfo(
            path=loaded.resolve("a.wav"),
            duration=1.0,
            audio=[AudioStream(index=0, codec="pcm_s16le", sample_rate=48000, channels=1, duration=1.0)],
        ),
    }
    with pytest.raises(ManifestError) as exc:
        plan_manifest(loaded, media, audio_ops_dir=tmp_path / "ops")
    found = {(p.line, p.field) for p in exc.value.problems}
    assert {
        (7, "languages.es.lines[0].start"),  # a label drop-frame skips (schema pass)
        (9, "languages.es.lines[2].audo"),  # a typo (schema pass)
        (12, "languages.de.speech.text"),  # empty text (schema pass)
        (8, "languages.es.lines[1].end"),  # end before start (timing pass), line 8 still
        (11, "languages.es.lines[4].start"),  # one speaker overlapping itself (timing pass)
    } <= found
    assert not any(p.field == "timecode_start" for p in exc.value.problems)  # ;00 at minute 0 exists
    assert all(p.line is not None for p in exc.value.problems)


def test_a_manifest_with_no_frame_left_is_refused_with_its_schema_problems_only(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 2\nvideo: v.mp4\nlanguages: {es: {audio: a.wav}}\n")
    loaded, problems = read_manifest(path)
    assert loaded is None and [p.field for p in problems] == ["version"]


def test_timecode_start_must_be_source_or_a_timecode(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nvideo: v.mp4\ntimecode_start: 3600\nlanguages: {es: {audio: a.wav}}\n")
    _, problems = read_manifest(path)
    [problem] = [p for p in problems if p.field == "timecode_start"]
    assert problem.line == 3 and problem.fix is not None and "timecode_start: source" in problem.fix
