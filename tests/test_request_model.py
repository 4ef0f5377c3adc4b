"""Sync3Request: every parameter and every rule of the sync-3 spec page, valid and invalid."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from prefect_lipsync.runware.models import (
    MODEL_ID,
    ErrorItem,
    Inputs,
    Segment,
    Settings,
    Sync3Request,
    Sync3Result,
    Sync3ValidationError,
    parse_result_item,
    parse_webhook_body,
)

UUID4 = "5f4c3a6e-2b1d-4c8e-9f7a-1b2c3d4e5f60"
UUID1 = "a8098c1a-f86e-11da-bd1a-00112444be1e"  # a version-1 UUID
VIDEO = "https://cdn.example.com/source.mp4"
AUDIO = "https://cdn.example.com/dub.wav"


def base(**extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": UUID4,
        "model": "sync:3@0",
        "inputs": {"video": VIDEO, "audio": AUDIO},
    }
    payload.update(extra)
    return payload


def segmented(*segments: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return base(inputs={"video": VIDEO}, settings={"segments": list(segments), **settings})


def seg(start: float, end: float, **extra: Any) -> dict[str, Any]:
    return {"startTime": start, "endTime": end, "audio": AUDIO, **extra}


def problems_of(payload: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(Sync3ValidationError) as info:
        Sync3Request.model_validate(payload)
    return {p.path: p.message for p in info.value.problems}


# Examples in the shape of the provider's page: they must come back byte-for-byte as JSON.
SPEC_EXAMPLES = {
    "audio track": base(),
    "speech with tts": base(
        inputs={"video": VIDEO},
        speech={"text": "Hello there, welcome back.", "voice": "auto"},
        settings={
            "tts": {"provider": "elevenlabs", "stability": 0.5, "similarityBoost": 0.75},
            "syncMode": "silence",
        },
    ),
    "segments with crops and speaker point": segmented(
        seg(1.0, 3.52, audioStartTime=0.0, audioEndTime=2.52),
        seg(4.04, 6, audio="https://cdn.example.com/take2.wav", audioStartTime=1.5, audioEndTime=3.7),
        activeSpeakerDetection={"coordinates": [412, 210], "frameNumber": 30},
        syncMode="cut_off",
    ),
    "every api option": base(
        outputType="URL",
        outputFormat="WEBM",
        outputQuality=80,
        webhookURL="https://hooks.example.com/runware?token=abc",
        deliveryMethod="async",
        uploadEndpoint="https://bucket.s3.amazonaws.com/out.webm?X-Amz-Signature=abc",
        safety={"checkContent": True, "mode": "full"},
        ttl=3600,
        includeCost=True,
        numberResults=3,
    ),
    "bounding box track": segmented(
        seg(0.0, 0.12),
        activeSpeakerDetection={"boundingBoxes": [[10, 20, 110, 140], None, [12, 20, 112, 140]]},
    ),
    "auto detect": base(settings={"activeSpeakerDetection": {"autoDetect": True}, "syncMode": "remap"}),
}


@pytest.mark.parametrize("name", list(SPEC_EXAMPLES))
def test_valid_examples_round_trip_to_identical_json(name: str) -> None:
    payload = SPEC_EXAMPLES[name]
    request = Sync3Request.model_validate(copy.deepcopy(payload))
    dumped = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert json.dumps(dumped, sort_keys=True) == json.dumps(payload, sort_keys=True)


# (path in the payload, a valid value) for every parameter: each alone must validate.
VALID_VALUES: list[tuple[str, Any]] = [
    ("outputType", "URL"),
    ("outputFormat", "MP4"),
    ("outputFormat", "WEBM"),
    ("outputFormat", "MOV"),
    ("outputQuality", 20),
    ("outputQuality", 99),
    ("webhookURL", "https://example.com/hook?token=t"),
    ("deliveryMethod", "async"),
    ("uploadEndpoint", "https://storage.example.com/upload/out.mp4"),
    ("safety", {"checkContent": False}),
    ("safety", {"mode": "none"}),
    ("safety", {"mode": "fast"}),
    ("safety", {"checkContent": True, "mode": "full"}),
    ("ttl", 60),
    ("ttl", 86400),
    ("includeCost", True),
    ("numberResults", 1),
    ("numberResults", 20),
    ("model", "sync:3@0"),
    ("inputs", {"video": UUID4, "audio": UUID1}),
    ("inputs", {"video": "http://127.0.0.1:8765/media/a.mp4", "audio": AUDIO}),
    ("settings", {"syncMode": "bounce"}),
    ("settings", {"syncMode": "cut_off"}),
    ("settings", {"syncMode": "silence"}),
    ("settings", {"syncMode": "remap"}),
    ("settings", {"activeSpeakerDetection": {"autoDetect": False}}),
    ("settings", {"activeSpeakerDetection": {"coordinates": [0, 0], "frameNumber": 0}}),
    ("settings", {"activeSpeakerDetection": {"boundingBoxes": [None, None]}}),
]


@pytest.mark.parametrize(("key", "value"), VALID_VALUES, ids=[f"{k}={v}" for k, v in VALID_VALUES])
def test_each_valid_parameter_value_is_accepted_and_sent_unchanged(key: str, value: Any) -> None:
    payload = base(**{key: value})
    dumped = Sync3Request.model_validate(payload).to_wire()
    assert dumped[key] == value


def test_model_alias_is_accepted_and_the_canonical_id_is_sent() -> None:
    request = Sync3Request.model_validate(base(model="sync:lipsync@3"))
    assert request.to_wire()["model"] == MODEL_ID == "sync:3@0"


def test_spec_defaults_are_visible_but_not_sent_when_unset() -> None:
    request = Sync3Request.model_validate(base())
    assert (request.output_type, request.output_format, request.output_quality) == ("URL", "MP4", 95)
    assert (request.delivery_method, request.include_cost, request.number_results) == ("async", False, 1)
    assert request.effective_sync_mode == "cut_off"
    assert set(request.to_wire()) == {"taskType", "taskUUID", "model", "inputs"}


def test_speech_voice_defaults_to_auto_and_safety_check_content_means_fast() -> None:
    request = Sync3Request.model_validate(
        base(inputs={"video": VIDEO}, speech={"text": "hi"}, safety={"checkContent": True})
    )
    assert request.speech is not None and request.speech.voice == "auto"
    assert request.safety is not None and request.safety.effective_mode == "fast"
    assert request.to_wire()["speech"] == {"text": "hi"}


def test_python_construction_with_snake_case_names() -> None:
    request = Sync3Request(
        inputs=Inputs(video=VIDEO),
        settings=Settings(
            segments=[Segment(start_time=0.5, end_time=1.25, audio=AUDIO)], sync_mode="silence"
        ),
        include_cost=True,
    )
    wire = request.to_wire()
    assert wire["taskType"] == "videoInference" and wire["model"] == MODEL_ID and wire["includeCost"] is True
    assert wire["settings"] == {
        "segments": [{"startTime": 0.5, "endTime": 1.25, "audio": AUDIO}],
        "syncMode": "silence",
    }


# (description, payload, expected JSON path, a word the message must contain)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("taskType other", base(taskType="imageInference"), "taskType", "videoInference"),
    ("taskUUID not a uuid", base(taskUUID="job-1"), "taskUUID", "version-4"),
    ("taskUUID version 1", base(taskUUID=UUID1), "taskUUID", "version-4"),
    ("outputType base64", base(outputType="base64Data"), "outputType", "URL"),
    ("outputFormat lower", base(outputFormat="mp4"), "outputFormat", "MP4"),
    ("outputFormat gif", base(outputFormat="GIF"), "outputFormat", "MOV"),
    ("outputQuality low", base(outputQuality=19), "outputQuality", "20"),
    ("outputQuality high", base(outputQuality=100), "outputQuality", "99"),
    ("outputQuality float", base(outputQuality=50.5), "outputQuality", "integer"),
    ("webhookURL not url", base(webhookURL="hooks/abc"), "webhookURL", "URL"),
    ("deliveryMethod sync", base(deliveryMethod="sync"), "deliveryMethod", "async"),
    ("uploadEndpoint ftp", base(uploadEndpoint="ftp://x/y"), "uploadEndpoint", "URL"),
    ("safety mode", base(safety={"mode": "strict"}), "safety.mode", "full"),
    ("safety checkContent type", base(safety={"checkContent": "maybe"}), "safety.checkContent", "bool"),
    ("ttl too short", base(ttl=59), "ttl", "60"),
    ("includeCost type", base(includeCost="often"), "includeCost", "bool"),
    ("numberResults zero", base(numberResults=0), "numberResults", "1"),
    ("numberResults high", base(numberResults=21), "numberResults", "20"),
    ("model unknown", base(model="sync:2@0"), "model", "sync:3@0"),
    ("inputs missing", {k: v for k, v in base().items() if k != "inputs"}, "inputs", "required"),
    ("video missing", base(inputs={"audio": AUDIO}), "inputs.video", "required"),
    ("video not ref", base(inputs={"video": "source.mp4", "audio": AUDIO}), "inputs.video", "URL"),
    ("audio not ref", base(inputs={"video": VIDEO, "audio": "dub"}), "inputs.audio", "URL"),
    ("speech text empty", base(inputs={"video": VIDEO}, speech={"text": ""}), "speech.text", "1 character"),
    ("speech text long", base(inputs={"video": VIDEO}, speech={"text": "a" * 5001}), "speech.text", "5000"),
    (
        "speech voice empty",
        base(inputs={"video": VIDEO}, speech={"text": "a", "voice": ""}),
        "speech.voice",
        "1",
    ),
    ("unknown top key", base(temperature=0.5), "temperature", "not a sync-3 parameter"),
    ("settings.mode", base(settings={"mode": "fast"}), "settings.mode", "not a sync-3 parameter"),
    (
        "occlusionDetection",
        base(settings={"occlusionDetection": True}),
        "settings.occlusionDetection",
        "not a",
    ),
    ("syncMode", base(settings={"syncMode": "loop"}), "settings.syncMode", "remap"),
    (
        "tts stability",
        base(inputs={"video": VIDEO}, speech={"text": "a"}, settings={"tts": {"stability": 1.5}}),
        "settings.tts.stability",
        "1",
    ),
    (
        "tts similarity",
        base(inputs={"video": VIDEO}, speech={"text": "a"}, settings={"tts": {"similarityBoost": -0.1}}),
        "settings.tts.similarityBoost",
        "0",
    ),
    (
        "tts without speech",
        base(settings={"tts": {"provider": "elevenlabs"}}),
        "settings.tts",
        "needs speech",
    ),
    ("none of audio/speech/segments", base(inputs={"video": VIDEO}), "", "exactly one"),
    ("audio and speech", base(speech={"text": "hi"}), "", "exactly one"),
    ("audio and segments", base(settings={"segments": [seg(0, 1)]}), "", "exactly one"),
    ("speech and segments", segmented(seg(0, 1)) | {"speech": {"text": "x"}}, "", "exactly one"),
    ("segments empty", segmented(), "settings.segments", "at least one"),
    ("segment start negative", segmented(seg(-0.5, 1)), "settings.segments[0].startTime", "0"),
    ("segment start off grid", segmented(seg(0.005, 1)), "settings.segments[0].startTime", "0.01"),
    ("segment end off grid", segmented(seg(0, 1.234)), "settings.segments[0].endTime", "0.01"),
    (
        "segment end before start",
        segmented(seg(0, 1), seg(2.5, 2.0)),
        "settings.segments[1].endTime",
        "greater",
    ),
    ("segment end equals start", segmented(seg(1, 1)), "settings.segments[0].endTime", "greater"),
    ("segment end as text", segmented(seg(0, "1.5")), "settings.segments[0].endTime", "number"),
    ("segment end as bool", segmented(seg(0, True)), "settings.segments[0].endTime", "number"),
    (
        "segment audio missing",
        segmented({"startTime": 0, "endTime": 1}),
        "settings.segments[0].audio",
        "required",
    ),
    ("segment audio uuid", segmented(seg(0, 1, audio=UUID4)), "settings.segments[0].audio", "mediaURL"),
    (
        "audioStartTime alone",
        segmented(seg(0, 1, audioStartTime=0.5)),
        "settings.segments[0].audioEndTime",
        "together",
    ),
    (
        "audioEndTime alone",
        segmented(seg(0, 1, audioEndTime=0.5)),
        "settings.segments[0].audioStartTime",
        "together",
    ),
    (
        "audioEnd before audioStart",
        segmented(seg(0, 1, audioStartTime=2, audioEndTime=1)),
        "settings.segments[0].audioEndTime",
        "greater",
    ),
    (
        "audioStartTime negative",
        segmented(seg(0, 1, audioStartTime=-1, audioEndTime=1)),
        "settings.segments[0].audioStartTime",
        "0",
    ),
    (
        "audioEndTime off grid",
        segmented(seg(0, 1, audioStartTime=0, audioEndTime=0.333)),
        "settings.segments[0].audioEndTime",
        "0.01",
    ),
    ("segments overlap", segmented(seg(0, 2), seg(1.5, 3)), "settings.segments[1].startTime", "overlaps"),
    (
        "boxes with coordinates",
        base(
            settings={
                "activeSpeakerDetection": {
                    "boundingBoxes": [[0, 0, 1, 1]],
                    "coordinates": [1, 1],
                    "frameNumber": 0,
                }
            }
        ),
        "settings.activeSpeakerDetection.boundingBoxes",
        "coordinates",
    ),
    (
        "coordinates without frame",
        base(settings={"activeSpeakerDetection": {"coordinates": [1, 1]}}),
        "settings.activeSpeakerDetection.frameNumber",
        "together",
    ),
    (
        "frame without coordinates",
        base(settings={"activeSpeakerDetection": {"frameNumber": 3}}),
        "settings.activeSpeakerDetection.coordinates",
        "together",
    ),
    (
        "coordinates three numbers",
        base(settings={"activeSpeakerDetection": {"coordinates": [1, 2, 3], "frameNumber": 0}}),
        "settings.activeSpeakerDetection.coordinates",
        "two numbers",
    ),
    (
        "frameNumber negative",
        base(settings={"activeSpeakerDetection": {"coordinates": [1, 2], "frameNumber": -1}}),
        "settings.activeSpeakerDetection.frameNumber",
        "0",
    ),
    (
        "box three numbers",
        base(settings={"activeSpeakerDetection": {"boundingBoxes": [[0, 0, 1]]}}),
        "settings.activeSpeakerDetection.boundingBoxes[0]",
        "four numbers",
    ),
    (
        "box inverted x",
        base(settings={"activeSpeakerDetection": {"boundingBoxes": [None, [5, 0, 1, 4]]}}),
        "settings.activeSpeakerDetection.boundingBoxes[1]",
        "x1 < x2",
    ),
    (
        "box inverted y",
        base(settings={"activeSpeakerDetection": {"boundingBoxes": [[0, 5, 4, 1]]}}),
        "settings.activeSpeakerDetection.boundingBoxes[0]",
        "y1 < y2",
    ),
    (
        "box negative",
        base(settings={"activeSpeakerDetection": {"boundingBoxes": [[-1, 0, 4, 4]]}}),
        "settings.activeSpeakerDetection.boundingBoxes[0]",
        "negative",
    ),
    (
        "autoDetect type",
        base(settings={"activeSpeakerDetection": {"autoDetect": "yes"}}),
        "settings.activeSpeakerDetection.autoDetect",
        "bool",
    ),
]


@pytest.mark.parametrize(("case", "payload", "path", "word"), INVALID, ids=[c[0] for c in INVALID])
def test_each_invalid_value_or_rule_is_reported_at_its_json_path(
    case: str, payload: dict[str, Any], path: str, word: str
) -> None:
    problems = problems_of(payload)
    assert path in problems, f"{case}: expected a problem at {path!r}, got {problems}"
    assert word.lower() in problems[path].lower(), problems[path]


def test_every_problem_is_reported_at_once_in_one_error() -> None:
    payload = base(
        taskUUID="nope",
        outputQuality=5,
        speech={"text": "also speech"},
        settings={"segments": [seg(0.001, 1), seg(3, 2)], "syncMode": "loop"},
    )
    with pytest.raises(Sync3ValidationError) as info:
        Sync3Request.model_validate(payload)
    paths = {p.path for p in info.value.problems}
    assert {
        "taskUUID",
        "outputQuality",
        "settings.segments[0].startTime",
        "settings.segments[1].endTime",
        "settings.syncMode",
        "",
    } <= paths
    text = str(info.value)
    assert "settings.segments[1].endTime" in text and "(request): provide exactly one of" in text


def test_a_request_without_task_uuid_is_accepted_for_the_client_to_fill() -> None:
    payload = base()
    del payload["taskUUID"]
    request = Sync3Request.model_validate(payload)
    assert request.task_uuid is None and "taskUUID" not in request.to_wire()


def test_local_file_refs_are_listed_for_upload() -> None:
    request = Sync3Request.model_validate(
        segmented(seg(0, 1, audio="file:///data/project/es/l001.wav"), seg(1, 2))
        | {"inputs": {"video": "file:///data/project/source.mp4"}}
    )
    assert request.local_refs() == ["file:///data/project/source.mp4", "file:///data/project/es/l001.wav"]


# ------------------------------------------------------------------------- answers


def test_result_parses_success_and_keeps_unknown_fields() -> None:
    item = {
        "taskType": "videoInference",
        "taskUUID": UUID4,
        "status": "success",
        "videoUUID": UUID1,
        "videoURL": "https://im.runware.ai/video/x.mp4",
        "seed": 42,
        "NSFWContent": False,
        "cost": 1.3,
        "someNewField": {"a": 1},
    }
    result = parse_result_item(item)
    assert isinstance(result, Sync3Result)
    assert result.is_success and result.is_terminal and result.cost == 1.3 and result.nsfw_content is False
    assert result.model_extra == {"someNewField": {"a": 1}}


def test_finished_item_without_status_counts_as_success_and_processing_is_not_terminal() -> None:
    done = parse_result_item({"taskUUID": UUID4, "videoURL": "https://x/y.mp4"})
    running = parse_result_item(
        {"taskType": "getResponse", "taskUUID": UUID4, "status": "processing", "progress": 40}
    )
    assert isinstance(done, Sync3Result) and done.is_success
    assert isinstance(running, Sync3Result) and not running.is_terminal and running.progress == 40


def test_both_failure_shapes_parse_to_an_error_with_code_and_task_uuid() -> None:
    nested = parse_result_item(
        {
            "taskUUID": UUID4,
            "status": "error",
            "error": {"code": "timeoutProvider", "message": "provider timed out"},
        }
    )
    assert isinstance(nested, ErrorItem)
    assert (nested.code, nested.task_uuid, nested.message) == ("timeoutProvider", UUID4, "provider timed out")
    listed = parse_webhook_body(
        {
            "errors": [
                {
                    "code": "invalidAudio",
                    "message": "bad",
                    "parameter": ["inputs.audio"],
                    "taskUUID": UUID4,
                    "taskType": "videoInference",
                    "status": "error",
                }
            ]
        }
    )
    assert len(listed) == 1 and isinstance(listed[0], ErrorItem)
    assert listed[0].parameter == ["inputs.audio"] and listed[0].task_uuid == UUID4


def test_webhook_bodies_flat_or_wrapped_parse_the_same() -> None:
    item = {"taskUUID": UUID4, "videoUUID": UUID1, "videoURL": "https://x/y.mp4", "status": "success"}
    flat, wrapped = parse_webhook_body(item), parse_webhook_body({"data": [item]})
    assert flat == wrapped and isinstance(flat[0], Sync3Result)
