"""music_and_effects in the plan: the stem each dub is mixed over, checked against the probes, and the
warning a source gets when the service cannot carry its audio whole. No file on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from manifest_testkit import BASE, audio_info, plan_data, video_info

from prefect_lipsync.manifest import Manifest, ManifestError, plan_manifest, prepare, read_manifest
from prefect_lipsync.media.info import AudioStream, MediaInfo


def master(*layouts: tuple[int, str]) -> MediaInfo:
    """A 10 s video (stream 0) with one audio stream per (channels, layout), streams 1, 2, ..."""
    info = video_info(f"{BASE}/v.mp4")
    audio = [
        AudioStream(
            index=i + 1, codec="aac", sample_rate=48000, channels=n, channel_layout=name, duration=10.0
        )
        for i, (n, name) in enumerate(layouts)
    ]
    return info.model_copy(update={"audio": audio})


def manifest(stem: Any = None, **language: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": 1,
        "video": "v.mp4",
        "languages": {
            "es": language or {"lines": [{"id": "a", "start": 1, "end": 2, "audio": "a.wav"}]},
            "de": {"audio": "de.wav"},
        },
    }
    if stem is not None:
        data["music_and_effects"] = stem
    return data


AUDIO = {"a.wav": 1.0, "de.wav": 10.0}


def test_a_stream_of_the_video_is_the_stem_of_every_language_at_the_video_layout() -> None:
    plan = plan_data(manifest({"stream": 2}), audio=AUDIO, video=master((6, "5.1"), (6, "5.1")))
    es, de = plan.jobs
    assert es.final_mix is not None and de.final_mix is not None
    assert (es.final_mix.stem, es.final_mix.stream) == (f"{BASE}/v.mp4", 2)
    assert (es.final_mix.layout, es.final_mix.channels, es.final_mix.sample_rate) == ("5.1", 6, 48000)
    assert es.final_mix.dub_windows == [(1.0, 2.0)]  # the dub plays in its segment only
    assert de.final_mix.dub_windows == [(0.0, 10.0)]  # a whole dub track: everywhere
    assert not [w for w in es.warnings if "audio stream" in w]
    assert es.summary()["final_mix"]["stream"] == 2


def test_a_stem_file_is_probed_and_a_layout_or_length_that_differs_is_said() -> None:
    plan = plan_data(manifest("me.wav"), audio={**AUDIO, "me.wav": 8.0}, video=master((6, "5.1(side)")))
    mix = plan.jobs[0].final_mix
    assert mix is not None and mix.stem == f"{BASE}/me.wav" and mix.stream is None
    assert mix.layout == "5.1(side)" and mix.channels == 6
    warnings = " ".join(plan.jobs[0].warnings)
    assert "me.wav is mono and the video's audio 5.1(side): the stem is remixed to 5.1(side)" in warnings
    assert "me.wav is 8 s and the video 10 s: after the stem ends, only the dub plays" in warnings


def test_a_video_without_audio_takes_the_stem_file_layout() -> None:
    stereo = [AudioStream(index=0, codec="pcm_s16le", sample_rate=44100, channels=2, duration=10.0)]
    stem = audio_info(f"{BASE}/me.wav", 10.0).model_copy(update={"audio": stereo})
    loaded = prepare(Manifest.model_validate(manifest("me.wav")), base_dir=BASE)
    media = {f"{BASE}/v.mp4": master(), f"{BASE}/me.wav": stem}
    media |= {f"{BASE}/{k}": audio_info(f"{BASE}/{k}", v) for k, v in AUDIO.items()}
    mix = plan_manifest(loaded, media, audio_ops_dir=f"{BASE}/ops").jobs[0].final_mix
    assert mix is not None and (mix.layout, mix.channels, mix.sample_rate) == ("stereo", 2, 44100)


@pytest.mark.parametrize(
    ("stem", "video", "says", "fix"),
    [
        (
            {"stream": 3},
            master((2, "stereo"), (2, "stereo")),
            "stream 3 of the video, which is not an audio"
            " stream of it (its audio streams: stream 1: stereo, stream 2: stereo)",
            "use one of {stream: 1}, {stream: 2}",
        ),
        ({"stream": 0}, master((2, "stereo")), "which is its picture", "use one of {stream: 1}"),
        ({"stream": 1}, master(), "the video has no audio stream", "music_and_effects: me.wav"),
        ("missing.wav", master((2, "stereo")), "music_and_effects file /manifests/missing.wav", "probe"),
    ],
    ids=["no-such-stream", "the-picture", "silent-video", "unprobed-file"],
)
def test_a_stem_that_is_not_there_is_a_problem_with_its_field_and_fix(
    stem: Any, video: MediaInfo, says: str, fix: str
) -> None:
    with pytest.raises(ManifestError) as info:
        plan_data(manifest(stem), audio=AUDIO, video=video)
    [problem] = info.value.problems
    assert problem.field == "music_and_effects" and says in problem.message, problem
    assert problem.fix is not None and fix in problem.fix


def test_the_first_audio_stream_as_the_stem_of_a_master_with_several_is_questioned() -> None:
    plan = plan_data(manifest({"stream": 1}), audio=AUDIO, video=master((2, "stereo"), (2, "stereo")))
    assert any(
        "usually holds the full mix with the original dialogue" in w and "{stream: 2}" in w
        for w in plan.jobs[0].warnings
    )


def test_without_a_stem_several_audio_streams_get_a_warning_naming_stream_layout_and_the_choice() -> None:
    plan = plan_data(manifest(), audio=AUDIO, video=master((2, "stereo"), (6, "5.1")))
    for job in plan.jobs:
        assert job.final_mix is None
        [warning] = [w for w in job.warnings if "audio streams" in w]
        assert "stream 1: stereo, stream 2: 5.1" in warning
        assert "made from stream 1 alone, in stereo" in warning and "stream 2 will not be in it" in warning
        assert "music_and_effects: {stream: 2}" in warning


def test_without_a_stem_a_51_source_is_told_it_comes_back_stereo_and_how_to_keep_51() -> None:
    plan = plan_data(manifest(), audio=AUDIO, video=master((6, "5.1")))
    [warning] = [w for w in plan.jobs[0].warnings if "5.1" in w]
    assert "is 5.1: the output's audio is what the service returns, in stereo" in warning
    assert "music_and_effects: me.wav" in warning and "{stream: N}" in warning


def test_a_plain_stereo_source_gets_no_audio_warning() -> None:
    plan = plan_data(manifest(), audio=AUDIO, video=master((2, "stereo")))
    assert not [w for w in plan.jobs[0].warnings if "music_and_effects" in w]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{strem: 2}", "takes only `stream` in a mapping (unknown key strem)"),
        ("{stream: -1}", "stream must be a stream index"),
        ("2", "is a bare number"),
        ("''", "is empty"),
    ],
)
def test_a_malformed_music_and_effects_is_one_problem_at_its_line(
    tmp_path: Path, value: str, says: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"version: 1\nvideo: v.mp4\nmusic_and_effects: {value}\nlanguages:\n  es: {{audio: a.wav}}\n"
    )
    loaded, problems = read_manifest(path)
    assert loaded is None
    [problem] = problems
    assert problem.line == 3 and problem.field == "music_and_effects" and says in problem.message
    assert problem.fix
