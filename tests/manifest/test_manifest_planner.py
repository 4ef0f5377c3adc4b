"""The planner on synthetic probe results: every rule of segment planning, no file on disk."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from manifest_testkit import BASE, audio_info, plan_data, segments, uri, video_info

from prefect_lipsync.manifest import Manifest, ManifestError, plan_manifest, prepare
from prefect_lipsync.manifest.frames import frame_shown_at
from prefect_lipsync.media.audio_ops import AudioOp
from prefect_lipsync.runware.models import Sync3Request


def manifest(lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1, "video": "v.mp4", "languages": {"es": {"lines": lines}}}
    data.update(extra)
    return data


def line(id: str, start: Any, end: Any, audio: str = "a.wav", **kw: Any) -> dict[str, Any]:
    return {"id": id, "start": start, "end": end, "audio": audio, **kw}


def problems_of(exc: pytest.ExceptionInfo[ManifestError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_lines_are_sorted_and_each_request_passes_the_spec_model() -> None:
    plan = plan_data(
        manifest([line("b", 5, 6, "b.wav"), line("a", 1, 2, "a.wav")]), audio={"a.wav": 1.0, "b.wav": 1.0}
    )
    segs = segments(plan)
    assert [(s["startTime"], s["endTime"]) for s in segs] == [(1.0, 2.0), (5.0, 6.0)]
    assert plan.jobs[0].segment_lines == [["a"], ["b"]]
    Sync3Request.model_validate(plan.jobs[0].request.to_wire())
    assert segs[0]["audio"] == uri("a.wav")


def test_shorter_audio_shrinks_the_slot_and_audio_times_are_always_sent_together() -> None:
    segs = segments(plan_data(manifest([line("a", 1, 4)]), audio={"a.wav": 1.6}))
    assert segs == [
        {"startTime": 1.0, "endTime": 2.6, "audio": uri("a.wav"), "audioStartTime": 0.0, "audioEndTime": 1.6}
    ]


def test_longer_audio_extends_into_the_following_gap() -> None:
    plan = plan_data(
        manifest([line("a", 1, 2), line("b", 4, 5, "b.wav")]), audio={"a.wav": 2.6, "b.wav": 1.0}
    )
    assert segments(plan)[0]["endTime"] == 3.6
    assert plan.jobs[0].audio_ops == []


def test_audio_too_long_for_the_gap_is_sped_up_by_a_planned_audio_op() -> None:
    plan = plan_data(
        manifest([line("a", 1, 2), line("b", 3, 4, "b.wav")]),
        audio={"a.wav": 2.1, "b.wav": 1.0},
        hash_fn=lambda path: "ab" * 32,
    )
    job = plan.jobs[0]
    assert len(job.audio_ops) == 1
    planned = job.audio_ops[0]
    assert planned.op == AudioOp(source=f"{BASE}/a.wav", start=0.0, end=2.1, tempo=1.05)
    assert planned.content_key == planned.op.content_key("ab" * 32)
    seg = segments(plan)[0]
    assert seg["audio"] == planned.output_uri and planned.output_uri.startswith("file://")
    assert planned.output_uri.endswith(f"audio-{planned.content_key}.wav")
    assert (seg["startTime"], seg["endTime"], seg["audioStartTime"], seg["audioEndTime"]) == (
        1.0,
        3.0,
        0.0,
        2.0,
    )
    assert any("sped up 1.05x" in w for w in job.warnings)


def test_the_op_output_name_is_deterministic_from_its_content() -> None:
    data = manifest([line("a", 1, 2), line("b", 3, 4, "b.wav")])
    first = plan_data(data, audio={"a.wav": 2.1, "b.wav": 1.0}, hash_fn=lambda p: "cd" * 32)
    again = plan_data(data, audio={"a.wav": 2.1, "b.wav": 1.0}, hash_fn=lambda p: "cd" * 32)
    other = plan_data(data, audio={"a.wav": 2.1, "b.wav": 1.0}, hash_fn=lambda p: "ef" * 32)
    assert first.jobs[0].audio_ops == again.jobs[0].audio_ops
    assert first.jobs[0].audio_ops[0].output_path != other.jobs[0].audio_ops[0].output_path


def test_audio_too_long_even_at_max_tempo_is_truncated_with_a_warning() -> None:
    plan = plan_data(
        manifest([line("a", 1, 2), line("b", 3, 4, "b.wav")]), audio={"a.wav": 3.0, "b.wav": 1.0}
    )
    job = plan.jobs[0]
    seg = segments(plan)[0]
    assert seg["endTime"] == 3.0  # the whole room up to the next line
    assert job.audio_ops[0].op.tempo == 1.1 and job.audio_ops[0].op.end == pytest.approx(2.2)
    assert any(w.startswith("speech truncated: line a") for w in job.warnings)


def test_truncation_without_tempo_when_max_tempo_is_one() -> None:
    plan = plan_data(
        manifest([line("a", 1, 2), line("b", 3, 4, "b.wav")], defaults={"max_tempo": 1.0}),
        audio={"a.wav": 3.0, "b.wav": 1.0},
    )
    seg = segments(plan)[0]
    assert plan.jobs[0].audio_ops == []
    assert (seg["endTime"], seg["audioStartTime"], seg["audioEndTime"]) == (3.0, 0.0, 2.0)
    assert any("speech truncated" in w for w in plan.jobs[0].warnings)


def test_neighbours_of_one_speaker_and_one_contiguous_audio_become_one_segment() -> None:
    lines = [
        line("a", 1.0, 2.0, "take.wav", audio_start=0.0, audio_end=1.0),
        line("b", 2.1, 3.0, "take.wav", audio_start=1.1, audio_end=2.0),
    ]
    plan = plan_data(manifest(lines), audio={"take.wav": 5.0})
    assert segments(plan) == [
        {
            "startTime": 1.0,
            "endTime": 3.0,
            "audio": uri("take.wav"),
            "audioStartTime": 0.0,
            "audioEndTime": 2.0,
        }
    ]
    assert plan.jobs[0].segment_lines == [["a", "b"]]


def test_neighbours_whose_audio_is_not_contiguous_stay_separate() -> None:
    lines = [
        line("a", 1.0, 2.0, "take.wav", audio_start=3.0, audio_end=4.0),
        line("b", 2.1, 3.0, "take.wav", audio_start=0.0, audio_end=0.9),
    ]
    assert len(segments(plan_data(manifest(lines), audio={"take.wav": 5.0}))) == 2


def test_neighbours_further_apart_than_merge_gap_stay_separate() -> None:
    lines = [
        line("a", 1.0, 2.0, "take.wav", audio_start=0.0, audio_end=1.0),
        line("b", 2.5, 3.5, "take.wav", audio_start=1.0, audio_end=2.0),
    ]
    assert len(segments(plan_data(manifest(lines), audio={"take.wav": 5.0}))) == 2


def test_lines_starting_after_the_video_end_are_dropped_with_a_warning() -> None:
    plan = plan_data(
        manifest([line("a", 1, 2), line("late", 12, 13, "b.wav")]), audio={"a.wav": 1, "b.wav": 1}
    )
    job = plan.jobs[0]
    assert [d.line_id for d in job.dropped_lines] == ["late"]
    assert any("late" in w and "after the video's end" in w for w in job.warnings)
    assert len(segments(plan)) == 1


def test_a_line_running_past_the_video_end_is_cut_at_the_last_frame() -> None:
    plan = plan_data(manifest([line("a", 9, 11)]), audio={"a.wav": 2.0})
    seg = segments(plan)[0]
    assert seg["endTime"] == 10.0 and seg["audioEndTime"] <= 2.0


def test_overlapping_lines_of_one_speaker_are_an_error_naming_both() -> None:
    with pytest.raises(ManifestError) as exc:
        plan_data(manifest([line("a", 1, 3), line("b", 2, 4, "b.wav")]), audio={"a.wav": 1, "b.wav": 1})
    [problem] = exc.value.problems
    assert (problem.language, problem.line_id, problem.field) == ("es", "b", "languages.es.lines[1].start")
    assert "line a" in problem.message and problem.fix


def test_two_speakers_overlapping_by_more_than_two_frames_is_an_error_naming_both() -> None:
    data = manifest(
        [line("a", 1, 3, speaker="anna"), line("b", 2.8, 4, "b.wav", speaker="bob")],
        speakers={"anna": {"box": [0, 0, 50, 50]}, "bob": {"box": [60, 0, 110, 50]}},
    )
    with pytest.raises(ManifestError) as exc:
        plan_data(data, audio={"a.wav": 2, "b.wav": 1})
    [problem] = exc.value.problems
    assert problem.line_id == "b" and "line a" in problem.message and "anna" in problem.message
    assert "bob" in problem.message and "5 frames" in problem.message


def test_two_speakers_overlapping_by_two_frames_are_trimmed_with_a_warning() -> None:
    data = manifest(
        [line("a", 1, 3.08, speaker="anna"), line("b", 3, 4, "b.wav", speaker="bob")],
        speakers={"anna": {"box": [0, 0, 50, 50]}, "bob": {"box": [60, 0, 110, 50]}},
    )
    plan = plan_data(data, audio={"a.wav": 2.08, "b.wav": 1})
    segs = segments(plan)
    assert segs[0]["endTime"] <= segs[1]["startTime"] == 3.0
    assert any("trimmed" in w and "2 frame" in w for w in plan.jobs[0].warnings)


def test_short_lines_are_widened_into_free_time() -> None:
    plan = plan_data(manifest([line("a", 1, 1.2)], defaults={"min_segment": 0.6}), audio={"a.wav": 0.2})
    seg = segments(plan)[0]
    assert (seg["startTime"], seg["endTime"]) == (1.0, 1.6)
    assert seg["audioEndTime"] == 0.2
    assert any("widened" in w for w in plan.jobs[0].warnings)


def test_short_lines_with_no_free_time_are_dropped_with_a_warning() -> None:
    data = manifest(
        [
            line("x", 0.0, 1.0, "x.wav", speaker="p"),
            line("a", 1.0, 1.2, speaker="q"),
            line("y", 1.2, 3.0, "y.wav", speaker="p"),
        ],
        speakers={"p": {"box": [0, 0, 50, 50]}, "q": {"box": [60, 0, 110, 50]}},
    )
    plan = plan_data(data, audio={"x.wav": 1.0, "a.wav": 0.2, "y.wav": 1.8})
    assert [d.line_id for d in plan.jobs[0].dropped_lines] == ["a"]
    assert len(segments(plan)) == 2


def test_short_lines_next_to_their_own_audio_are_merged() -> None:
    lines = [
        line("a", 1.0, 2.0, "take.wav", audio_start=0.0, audio_end=1.0),
        line("b", 2.4, 2.6, "take.wav", audio_start=1.4, audio_end=1.6),
    ]
    plan = plan_data(manifest(lines), audio={"take.wav": 5.0})
    assert plan.jobs[0].segment_lines == [["a", "b"]]


@pytest.mark.parametrize("rate", ["24", "25", "30000/1001", "50", "60000/1001", "60"])
def test_segment_times_fall_inside_the_intended_frames(rate: str) -> None:
    fps = Fraction(rate)
    lines, expected = [], []
    for n, (k1, k2) in enumerate([(7, 40), (53, 101), (130, 131 + int(fps))]):
        start, end = Fraction(k1) / fps, Fraction(k2) / fps
        lines.append(line(f"l{n}", float(start), float(end), f"a{n}.wav"))
        expected.append((k1, k2))
    audio = {f"a{n}.wav": float(Fraction(k2 - k1) / fps) for n, (k1, k2) in enumerate(expected)}
    plan = plan_data(manifest(lines), audio=audio, video=video_info(f"{BASE}/v.mp4", fps=rate, duration=8.0))
    for seg, (k1, k2) in zip(segments(plan), expected, strict=True):
        assert frame_shown_at(Fraction(repr(seg["startTime"])), fps) == k1
        assert frame_shown_at(Fraction(repr(seg["endTime"])), fps) == k2


def test_audio_end_never_passes_the_probed_end_of_the_audio() -> None:
    plan = plan_data(manifest([line("a", 1, 3, audio_start=0.004, audio_end=1.337)]), audio={"a.wav": 1.334})
    seg = segments(plan)[0]
    assert seg["audioEndTime"] <= 1.334 and seg["audioStartTime"] == 0.0


def test_one_point_speaker_becomes_coordinates_and_frame_number() -> None:
    plan = plan_data(
        manifest([line("a", 1, 2)], speakers={"anna": {"point": {"frame": 30, "x": 41, "y": 20}}}),
        audio={"a.wav": 1},
    )
    asd = plan.jobs[0].request.to_wire()["settings"]["activeSpeakerDetection"]
    assert asd == {"coordinates": [41.0, 20.0], "frameNumber": 30}


def test_no_speakers_means_auto_detection() -> None:
    plan = plan_data(manifest([line("a", 1, 2)]), audio={"a.wav": 1})
    assert plan.jobs[0].request.to_wire()["settings"]["activeSpeakerDetection"] == {"autoDetect": True}


def test_one_box_speaker_becomes_a_box_on_every_frame() -> None:
    plan = plan_data(
        manifest([line("a", 1, 2)], speakers={"anna": {"box": [10, 10, 50, 60]}}), audio={"a.wav": 1}
    )
    boxes = plan.jobs[0].request.to_wire()["settings"]["activeSpeakerDetection"]["boundingBoxes"]
    assert len(boxes) == 250 and all(b == [10, 10, 50, 60] for b in boxes)


def test_several_box_speakers_become_a_per_frame_track_with_nulls_where_nobody_speaks() -> None:
    data = manifest(
        [line("a", 1, 2, speaker="anna"), line("b", 3, 4, "b.wav", speaker="bob")],
        speakers={"anna": {"box": [0, 0, 50, 50]}, "bob": {"box": [60, 0, 110, 50]}},
    )
    plan = plan_data(data, audio={"a.wav": 1, "b.wav": 1})
    boxes = plan.jobs[0].request.to_wire()["settings"]["activeSpeakerDetection"]["boundingBoxes"]
    assert len(boxes) == 250
    assert (
        boxes[24] is None
        and boxes[25] == [0, 0, 50, 50]
        and boxes[49] == [0, 0, 50, 50]
        and boxes[50] is None
    )
    assert boxes[75] == [60, 0, 110, 50] and boxes[100] is None


def test_several_speakers_without_boxes_in_one_language_is_an_error() -> None:
    data = manifest(
        [line("a", 1, 2, speaker="anna"), line("b", 3, 4, "b.wav", speaker="bob")],
        speakers={"anna": {"point": {"x": 1, "y": 1}}, "bob": {"box": [60, 0, 110, 50]}},
    )
    with pytest.raises(ManifestError, match="anna has none"):
        plan_data(data, audio={"a.wav": 1, "b.wav": 1})


def test_whole_track_audio_and_speech_languages() -> None:
    data = {
        "version": 1,
        "video": "v.mp4",
        "defaults": {"sync_mode": "silence"},
        "languages": {
            "de": {"audio": "de.wav"},
            "fr": {"speech": {"text": "Bonjour"}, "sync_mode": "bounce"},
        },
    }
    plan = plan_data(data, audio={"de.wav": 9.0})
    de, fr = (job.request.to_wire() for job in plan.jobs)
    assert de["inputs"] == {"video": uri("v.mp4"), "audio": uri("de.wav")}
    assert de["settings"]["syncMode"] == "silence" and "segments" not in de["settings"]
    assert any("dub track is 9 s" in w for w in plan.jobs[0].warnings)
    assert fr["speech"] == {"text": "Bonjour", "voice": "auto"} and fr["settings"]["syncMode"] == "bounce"
    assert "audio" not in fr["inputs"]


def test_cost_estimate_is_output_seconds_times_price_times_results() -> None:
    data = {
        "version": 1,
        "video": "v.mp4",
        "name": "promo",
        "languages": {"de": {"audio": "d.wav"}, "it": {"audio": "d.wav"}},
    }
    plan = plan_data(data, audio={"d.wav": 10.0}, price_per_second=0.2, number_results=3)
    assert plan.estimated_seconds == 60.0 and plan.estimated_cost_usd == pytest.approx(12.0)
    assert [j.output_name for j in plan.jobs] == ["promo.de.mp4", "promo.it.mp4"]
    assert plan.jobs[0].request.number_results == 3


def test_every_problem_is_reported_at_once() -> None:
    data = manifest(
        [
            line("a", 2, 1),
            line("b", "00:00:01:99", 3, "b.wav"),
            line("c", 4, 5, "missing.wav"),
            line("d", 5, 6, "d.wav", audio_start=9),
        ]
    )
    with pytest.raises(ManifestError) as exc:
        plan_data(data, audio={"a.wav": 1, "b.wav": 1, "d.wav": 1})
    found = {(p.line_id, p.field) for p in exc.value.problems}
    assert found == {
        ("a", "languages.es.lines[0].end"),
        ("b", "languages.es.lines[1].start"),
        ("c", "languages.es.lines[2].audio"),
        ("d", "languages.es.lines[3].audio_start"),
    }
    text = str(exc.value)
    assert text.count("\n  - ") == 4 and "fix:" in text


def test_the_planner_reads_no_file() -> None:
    # BASE does not exist: a plan made of synthetic probes touches nothing on disk.
    loaded = prepare(Manifest.model_validate(manifest([line("a", 1, 2)])), base_dir="/nonexistent/dir")
    media = {
        "/nonexistent/dir/v.mp4": video_info("/nonexistent/dir/v.mp4"),
        "/nonexistent/dir/a.wav": audio_info("/nonexistent/dir/a.wav", 1.0),
    }
    plan = plan_manifest(loaded, media, audio_ops_dir="/nonexistent/ops")
    assert plan.jobs[0].request.local_refs() == [
        "file:///nonexistent/dir/v.mp4",
        "file:///nonexistent/dir/a.wav",
    ]
