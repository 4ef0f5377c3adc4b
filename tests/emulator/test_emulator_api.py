"""The emulator's REST protocol over loopback: auth, envelopes, every task type and error path."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_lipsync.emulator import EMULATOR_NOTE, run_emulator

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def codes(body: dict[str, Any]) -> list[str]:
    return [e["code"] for e in body.get("errors", [])]


def wait_for_stat(api: Any, name: str, value: int, timeout: float = 10.0) -> dict[str, Any]:
    """The stats once `name` reached `value` (deliveries are counted after the receiver answers)."""
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = api.stats()
        if stats[name] >= value or time.monotonic() > deadline:
            assert stats[name] == value, stats
            return stats
        time.sleep(0.05)


# --------------------------------------------------------------------------- envelope and auth


def test_run_emulator_yields_a_string_base_url_on_loopback() -> None:
    with run_emulator(latency=0) as base_url:
        assert isinstance(base_url, str)
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert base_url.base_url == str(base_url)
        assert base_url.stats()["http_requests"] == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url.root_url}/_emulator/stats", timeout=2)


def test_unknown_emulator_option_is_refused() -> None:
    with pytest.raises(TypeError, match="laytency"), run_emulator(laytency=1):
        pass


def test_missing_or_wrong_key_is_401_with_service_shaped_errors(emulator: Any, card: Path) -> None:
    api = emulator(api_key=KEY)
    task = [{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}]
    missing = api.post(task, headers={})
    wrong = api.post(task, headers={"Authorization": "Bearer nope"})
    assert missing.status_code == 401 and codes(missing.json()) == ["missingApiKey"]
    assert wrong.status_code == 401 and codes(wrong.json()) == ["invalidApiKey"]
    error = wrong.json()["errors"][0]
    assert {"code", "message", "documentation"} <= set(error)
    assert KEY not in wrong.text


def test_any_non_empty_key_is_accepted_when_none_is_configured(emulator: Any) -> None:
    api = emulator()
    answer = api.poll(str(uuid.uuid4()))
    assert codes(answer.json()) == ["taskNotFound"]


def test_authentication_task_in_the_body_stands_in_for_the_header(emulator: Any) -> None:
    api = emulator(api_key=KEY)
    answer = api.post([{"taskType": "authentication", "apiKey": KEY}], headers={})
    assert answer.status_code == 200
    assert answer.json()["data"][0]["taskType"] == "authentication"
    refused = api.post([{"taskType": "authentication", "apiKey": "bad"}], headers={})
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "not valid JSON"), (b'{"taskType": "getResponse"}', "JSON array"), (b"[]", "non-empty")],
)
def test_a_body_that_is_not_a_json_array_of_tasks_is_400(emulator: Any, content: bytes, message: str) -> None:
    api = emulator()
    answer = api.http.post(api.url, content=content, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert codes(answer.json()) == ["invalidRequestBody"]
    assert message in answer.json()["errors"][0]["message"]


def test_unknown_task_type_is_unsupported(emulator: Any) -> None:
    api = emulator()
    answer = api.post([{"taskType": "imageInference", "taskUUID": str(uuid.uuid4())}])
    assert answer.status_code == 400
    assert codes(answer.json()) == ["unsupportedTaskType"]
    assert answer.json()["errors"][0]["taskType"] == "imageInference"


# --------------------------------------------------------------------------- mediaStorage


def test_upload_of_raw_base64_and_data_uri_is_stored_byte_for_byte(emulator: Any, card: Path) -> None:
    api = emulator()
    for data_uri in (False, True):
        item = api.upload(card, data_uri=data_uri)
        assert item["taskType"] == "mediaStorage"
        assert uuid.UUID(item["mediaUUID"])
        served = api.http.get(item["mediaURL"])
        assert served.status_code == 200 and served.content == card.read_bytes()
    stats = api.stats()
    assert stats["uploads"] == 2 and stats["upload_bytes"] == 2 * card.stat().st_size


def test_upload_by_url_fetches_the_file(emulator: Any, card: Path) -> None:
    origin = emulator()
    hosted = origin.upload(card)["mediaURL"]
    api = emulator()
    task = {"taskType": "mediaStorage", "taskUUID": str(uuid.uuid4()), "operation": "upload", "media": hosted}
    item = api.post([task]).json()["data"][0]
    assert api.http.get(item["mediaURL"]).content == card.read_bytes()
    assert api.stats()["media_fetches"] == 1


def test_invalid_base64_upload_is_an_invalid_media_error(emulator: Any) -> None:
    api = emulator()
    task = {
        "taskType": "mediaStorage",
        "taskUUID": str(uuid.uuid4()),
        "operation": "upload",
        "media": "%%% nope",
    }
    answer = api.post([task])
    assert answer.status_code == 400
    assert codes(answer.json()) == ["invalidMedia"]


def test_deleted_media_can_no_longer_be_used(emulator: Any, card: Path) -> None:
    api = emulator()
    media_uuid = api.upload(card)["mediaUUID"]
    delete = {
        "taskType": "mediaStorage",
        "taskUUID": str(uuid.uuid4()),
        "operation": "delete",
        "media": media_uuid,
    }
    assert api.post([delete]).json()["data"][0]["mediaUUID"] == media_uuid
    again = api.post([{**delete, "taskUUID": str(uuid.uuid4())}])
    assert codes(again.json()) == ["mediaNotFound"]
    answer = api.submit(inputs={"video": media_uuid}, speech={"text": "hello"})
    assert codes(answer.json()) == ["invalidMediaReference"]


def test_a_big_upload_is_parsed_from_disk_and_stored_intact(emulator: Any, tmp_path: Path) -> None:
    # 12 MB of base64 goes past the in-memory limit: the streamed parser and decoder take over.
    payload = bytes(range(256)) * (9 * 1024 * 1024 // 256)
    api = emulator()
    task = {
        "taskType": "mediaStorage",
        "taskUUID": str(uuid.uuid4()),
        "operation": "upload",
        "media": base64.b64encode(payload).decode(),
    }
    item = api.post([task]).json()["data"][0]
    assert api.http.get(item["mediaURL"]).content == payload
    assert api.stats()["upload_bytes"] == len(payload)


# --------------------------------------------------------------------------- videoInference


def test_submit_answers_an_ack_and_the_task_finishes_after_the_latency(emulator: Any, card: Path) -> None:
    api = emulator(latency=1.0)
    video = api.upload(card)
    task_uuid = str(uuid.uuid4())
    submitted = time.monotonic()
    ack = api.post(
        [
            {
                "taskType": "videoInference",
                "taskUUID": task_uuid,
                "model": "sync:lipsync@3",
                "inputs": {"video": video["mediaUUID"]},
                "speech": {"text": "hello there"},
            }
        ]
    )
    assert ack.status_code == 200
    assert ack.json() == {"data": [{"taskType": "videoInference", "taskUUID": task_uuid}]}
    first = api.poll(task_uuid).json()["data"][0]
    assert first["status"] == "processing" and first["taskUUID"] == task_uuid and 0 <= first["progress"] < 100
    deadline = time.monotonic() + 30
    while (done := api.poll(task_uuid).json()["data"])[0]["status"] == "processing":
        assert time.monotonic() < deadline, done
        time.sleep(0.05)
    assert time.monotonic() - submitted >= 1.0  # not before the latency
    assert len(done) == 1
    item = done[0]
    assert item["status"] == "success" and item["taskType"] == "videoInference"
    assert item["videoURL"].endswith(f"/outputs/{item['videoUUID']}.mp4")
    assert item["emulated"] is True and item["emulatorNote"] == EMULATOR_NOTE
    assert item["NSFWContent"] is False and isinstance(item["seed"], int)
    assert "cost" not in item
    # Answers are cumulative: a finished item shows again.
    assert api.poll(task_uuid).json()["data"] == done


def test_number_results_gives_one_item_per_result_with_its_own_uuid_and_seed(
    emulator: Any, card: Path
) -> None:
    api = emulator(latency=0)
    video = api.upload(card)["mediaUUID"]
    items = api.run(inputs={"video": video}, speech={"text": "hi"}, numberResults=3)
    assert len(items) == 3
    assert len({i["videoUUID"] for i in items}) == 3
    assert len({i["seed"] for i in items}) == 3
    assert api.stats()["results"] == 3


def test_include_cost_is_price_per_second_times_the_video_duration(emulator: Any, card: Path) -> None:
    api = emulator(latency=0, price_per_second=0.5)
    video = api.upload(card)["mediaUUID"]
    items = api.run(inputs={"video": video}, speech={"text": "hi"}, includeCost=True, numberResults=2)
    assert [i["cost"] for i in items] == [pytest.approx(1.5, abs=0.01)] * 2
    assert api.stats()["spent_usd"] == pytest.approx(3.0, abs=0.02)


def test_a_submit_without_task_uuid_is_refused(emulator: Any, card: Path) -> None:
    api = emulator()
    video = api.upload(card)["mediaUUID"]
    answer = api.post([{"taskType": "videoInference", "model": "sync:3@0", "inputs": {"video": video}}])
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["code"] == "missingParameter" and error["parameter"] == "taskUUID"


def test_every_validation_problem_is_one_error_with_its_parameter(emulator: Any, card: Path) -> None:
    api = emulator()
    video = api.upload(card)["mediaUUID"]
    task_uuid = str(uuid.uuid4())
    answer = api.post(
        [
            {
                "taskType": "videoInference",
                "taskUUID": task_uuid,
                "model": "sync:3@0",
                "outputQuality": 5,
                "inputs": {"video": video},
                "settings": {
                    "segments": [{"startTime": 1.0, "endTime": 0.5, "audio": "https://x.test/a.wav"}]
                },
                "speech": {"text": "both given"},
            }
        ]
    )
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    by_parameter = {str(e["parameter"]): e for e in errors}
    assert "outputQuality" in by_parameter and by_parameter["outputQuality"]["code"] == "invalidParameter"
    assert by_parameter["settings.segments[0].endTime"]["code"] == "invalidParameter"
    exactly_one = [e for e in errors if e["code"] == "incompatibleParameters"]
    assert exactly_one and "exactly one of" in exactly_one[0]["message"]
    assert all(e["taskUUID"] == task_uuid and e["taskType"] == "videoInference" for e in errors)
    assert all(e["documentation"].startswith("https://") for e in errors)
    assert api.stats()["accepted"] == 0


def test_file_uris_are_refused_by_the_service(emulator: Any) -> None:
    api = emulator()
    answer = api.submit(inputs={"video": "file:///tmp/v.mp4"}, speech={"text": "hi"})
    error = answer.json()["errors"][0]
    assert error["code"] == "invalidParameter" and error["parameter"] == "inputs.video"
    assert "mediaStorage" in error["message"]


def test_unresolvable_media_refs_are_refused(emulator: Any) -> None:
    api = emulator()
    answer = api.submit(inputs={"video": str(uuid.uuid4()), "audio": f"{api.url.root_url}/media/missing.wav"})
    errors = answer.json()["errors"]
    assert {e["parameter"] for e in errors} == {"inputs.video", "inputs.audio"}
    assert codes(answer.json()) == ["invalidMediaReference"] * 2


def test_an_audio_file_given_as_the_video_is_refused(emulator: Any, tone880: Path) -> None:
    api = emulator()
    audio = api.upload(tone880)["mediaUUID"]
    answer = api.submit(inputs={"video": audio}, speech={"text": "hi"})
    error = answer.json()["errors"][0]
    assert error["code"] == "invalidParameter" and error["parameter"] == "inputs.video"


def test_resubmitting_a_task_uuid_is_a_conflict_and_costs_nothing(emulator: Any, card: Path) -> None:
    api = emulator(latency=5)
    video = api.upload(card)["mediaUUID"]
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "sync:3@0",
        "inputs": {"video": video},
        "speech": {"text": "hi"},
    }
    assert api.post([task]).status_code == 200
    again = api.post([task])
    assert again.status_code == 400
    assert codes(again.json()) == ["conflictTaskUUID"]
    stats = api.stats()
    assert (stats["accepted"], stats["conflicts"], stats["distinct_task_uuids"]) == (1, 1, 1)


def test_submit_beyond_the_credits_is_402_insufficient_credits(emulator: Any, card: Path) -> None:
    api = emulator(credits_usd=0.5, price_per_second=0.13)  # one 3 s job costs 0.39
    video = api.upload(card)["mediaUUID"]
    assert api.submit(inputs={"video": video}, speech={"text": "a"}).status_code == 200
    refused = api.submit(inputs={"video": video}, speech={"text": "b"})
    assert refused.status_code == 402
    assert codes(refused.json()) == ["insufficientCredits"]
    assert api.stats()["credits_left_usd"] == pytest.approx(0.11, abs=0.01)


def test_nsfw_rule_on_speech_text_flags_the_results(emulator: Any, card: Path) -> None:
    api = emulator(latency=0, nsfw_when_text_contains="forbidden")
    video = api.upload(card)["mediaUUID"]
    flagged = api.run(inputs={"video": video}, speech={"text": "a FORBIDDEN word"})
    clean = api.run(inputs={"video": video}, speech={"text": "a nice word"})
    assert flagged[0]["NSFWContent"] is True and clean[0]["NSFWContent"] is False


# --------------------------------------------------------------------------- getResponse


def test_several_polls_in_one_post_are_matched_by_task_uuid(emulator: Any, card: Path) -> None:
    api = emulator(latency=0)
    video = api.upload(card)["mediaUUID"]
    uuids = [
        api.submit(inputs={"video": video}, speech={"text": str(i)}).json()["data"][0]["taskUUID"]
        for i in range(3)
    ]
    unknown = str(uuid.uuid4())
    body = api.poll(*uuids, unknown).json()
    assert sorted(i["taskUUID"] for i in body["data"]) == sorted(uuids)
    assert [(e["code"], e["taskUUID"]) for e in body["errors"]] == [("taskNotFound", unknown)]


def test_an_unknown_task_alone_answers_404_task_not_found(emulator: Any) -> None:
    api = emulator()
    answer = api.poll(str(uuid.uuid4()))
    assert answer.status_code == 404 and codes(answer.json()) == ["taskNotFound"]


def test_reject_batch_polls_answers_400_to_a_batch_but_serves_single_polls(emulator: Any, card: Path) -> None:
    api = emulator(latency=0, reject_batch_polls=True)
    video = api.upload(card)["mediaUUID"]
    a, b = (
        api.submit(inputs={"video": video}, speech={"text": t}).json()["data"][0]["taskUUID"] for t in "ab"
    )
    batch = api.poll(a, b)
    assert batch.status_code == 400 and codes(batch.json()) == ["unsupportedBatchRequest"]
    assert api.poll(a).json()["data"][0]["status"] == "success"


def test_failed_tasks_use_both_failure_shapes(emulator: Any, card: Path) -> None:
    api = emulator(latency=0, task_error_rate=1.0, seed=3)
    video = api.upload(card)["mediaUUID"]
    shapes = set()
    for i in range(8):
        items = api.run(inputs={"video": video}, speech={"text": str(i)})
        assert len(items) == 1
        item = items[0]
        assert item["status"] == "error"
        if "error" in item:  # data item with a nested error
            assert item["error"]["code"] == "timeoutProvider"
            shapes.add("data")
        else:  # errors[] entry
            assert item["code"] == "timeoutProvider"
            shapes.add("errors")
    assert shapes == {"data", "errors"}
    stats = api.stats()
    assert stats["failed"] == 8 and stats["finished"] == 0 and stats["spent_usd"] == 0


def test_a_failed_task_answers_200_alongside_the_error(emulator: Any, card: Path) -> None:
    api = emulator(latency=0, task_error_rate=1.0, seed=3)
    video = api.upload(card)["mediaUUID"]
    task_uuid = api.submit(inputs={"video": video}, speech={"text": "x"}).json()["data"][0]["taskUUID"]
    assert api.poll(task_uuid).status_code == 200


# --------------------------------------------------------------------------- outputs


def test_outputs_render_lazily_once_for_concurrent_downloads(emulator: Any, card: Path) -> None:
    api = emulator(latency=0)
    video = api.upload(card)["mediaUUID"]
    items = api.run(inputs={"video": video}, speech={"text": "lazy"}, numberResults=2)
    assert api.stats()["renders"] == 0  # finished, but nobody asked for the file yet

    urls = [items[0]["videoURL"]] * 3 + [items[1]["videoURL"]] * 2
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda u: httpx.get(u, timeout=60), urls))
    assert all(a.status_code == 200 for a in answers)
    assert all(a.headers["content-length"] == str(len(a.content)) for a in answers)
    assert all(a.headers["content-type"] == "video/mp4" for a in answers)
    stats = api.stats()
    assert stats["renders"] == 1 and stats["downloads"] == 5


def test_an_unknown_or_unfinished_output_is_404(emulator: Any, card: Path) -> None:
    api = emulator(latency=30)
    assert api.http.get(f"{api.url.root_url}/outputs/{uuid.uuid4()}.mp4").status_code == 404
    video = api.upload(card)["mediaUUID"]
    api.submit(inputs={"video": video}, speech={"text": "x"})
    job = next(iter(api.url.emulator.jobs.values()))
    name = f"{job.results[0].video_uuid}.mp4"
    assert api.http.get(f"{api.url.root_url}/outputs/{name}").status_code == 404


def test_outputs_expire_after_their_ttl(emulator: Any, card: Path) -> None:
    api = emulator(latency=0)
    video = api.upload(card)["mediaUUID"]
    item = api.run(inputs={"video": video}, speech={"text": "x"}, ttl=60)[0]
    assert api.http.get(item["videoURL"]).status_code == 200
    api.url.advance(61)
    expired = api.http.get(item["videoURL"])
    assert expired.status_code == 404 and codes(expired.json()) == ["mediaExpired"]
    assert api.stats()["expired_downloads"] == 1


def test_advancing_the_clock_finishes_jobs(emulator: Any, card: Path) -> None:
    api = emulator(latency=3600)
    video = api.upload(card)["mediaUUID"]
    task_uuid = api.submit(inputs={"video": video}, speech={"text": "x"}).json()["data"][0]["taskUUID"]
    assert api.poll(task_uuid).json()["data"][0]["status"] == "processing"
    api.http.post(f"{api.url.root_url}/_emulator/advance", json={"seconds": 3600})
    assert api.poll(task_uuid).json()["data"][0]["status"] == "success"


def test_first_download_after_success_may_answer_422_or_502(emulator: Any, card: Path) -> None:
    api = emulator(latency=0, download_error_rate=1.0)
    video = api.upload(card)["mediaUUID"]
    item = api.run(inputs={"video": video}, speech={"text": "x"})[0]
    first = api.http.get(item["videoURL"])
    assert first.status_code in (422, 502)
    assert api.http.get(item["videoURL"]).status_code == 200
    assert api.stats()["faults"]["download_errors"] == 1


# --------------------------------------------------------------------------- webhooks, uploadEndpoint


def test_webhook_gets_one_flat_item_per_result_with_retries(emulator: Any, card: Path, receiver: Any) -> None:
    receiver.fail_first = 1  # the first call answers 500: the emulator must retry it
    api = emulator(latency=0.2)
    video = api.upload(card)["mediaUUID"]
    task_uuid = api.submit(
        inputs={"video": video},
        speech={"text": "x"},
        numberResults=2,
        webhookURL=f"{receiver.url}/hook?token=s3cret",
    ).json()["data"][0]["taskUUID"]
    calls = receiver.wait_for("POST", 3)

    bodies = [json.loads(c[2]) for c in calls[1:]]
    assert all(b["taskUUID"] == task_uuid and b["status"] == "success" for b in bodies)
    assert len({b["videoUUID"] for b in bodies}) == 2
    assert all("token=s3cret" in c[1] for c in calls)
    stats = wait_for_stat(api, "webhooks_sent", 2)
    assert stats["renders"] == 0  # the URL is posted, rendering waits


def test_upload_endpoint_gets_a_put_of_the_rendered_bytes(emulator: Any, card: Path, receiver: Any) -> None:
    api = emulator(latency=0)
    video = api.upload(card)["mediaUUID"]
    item = api.run(
        inputs={"video": video}, speech={"text": "x"}, uploadEndpoint=f"{receiver.url}/bucket/out.mp4"
    )[0]
    puts = receiver.wait_for("PUT", 1)
    assert puts[0][2] == api.http.get(item["videoURL"]).content
    assert wait_for_stat(api, "upload_endpoint_puts", 1)["renders"] == 1


# --------------------------------------------------------------------------- stats


def test_stats_count_requests_by_task_type_and_reset_clears_them(emulator: Any, card: Path) -> None:
    api = emulator(latency=0)
    video = api.upload(card)["mediaUUID"]
    task_uuid = api.submit(inputs={"video": video}, speech={"text": "x"}).json()["data"][0]["taskUUID"]
    api.poll(task_uuid)
    stats = api.stats()
    assert stats["requests"] == {"mediaStorage": 1, "videoInference": 1, "getResponse": 1}
    assert stats["http_requests"] == 3 and stats["accepted"] == 1 and stats["finished"] == 1
    assert stats == api.url.stats()
    api.http.post(f"{api.url.root_url}/_emulator/reset")
    assert api.stats()["http_requests"] == 0
    assert codes(api.poll(task_uuid).json()) == ["taskNotFound"]


def test_http_media_urls_in_a_request_are_fetched_once(emulator: Any, card: Path, tone880: Path) -> None:
    origin = emulator()
    video_url, audio_url = origin.upload(card)["mediaURL"], origin.upload(tone880)["mediaURL"]
    api = emulator(latency=0)
    task_uuids = []
    for mode in ("silence", "remap"):
        answer = api.submit(inputs={"video": video_url, "audio": audio_url}, settings={"syncMode": mode})
        assert answer.status_code == 200, answer.text
        task_uuids.append(answer.json()["data"][0]["taskUUID"])
    for task_uuid in task_uuids:  # the inputs are fetched after the acknowledgment
        assert [item["status"] for item in api.wait(task_uuid)] == ["success"]
    assert api.stats()["media_fetches"] == 2


def test_nsfw_by_task_uuid_and_by_rate(emulator: Any, card: Path) -> None:
    flagged_uuid = str(uuid.uuid4())
    api = emulator(latency=0, nsfw_task_uuids=[flagged_uuid])
    video = api.upload(card)["mediaUUID"]
    task = {
        "taskType": "videoInference",
        "model": "sync:3@0",
        "inputs": {"video": video},
        "speech": {"text": "x"},
    }
    assert api.post([{**task, "taskUUID": flagged_uuid}]).status_code == 200
    assert api.wait(flagged_uuid)[0]["NSFWContent"] is True
    assert api.run(inputs={"video": video}, speech={"text": "y"})[0]["NSFWContent"] is False
    always = emulator(latency=0, nsfw_rate=1.0)
    video = always.upload(card)["mediaUUID"]
    assert always.run(inputs={"video": video}, speech={"text": "z"})[0]["NSFWContent"] is True


@pytest.mark.slow
def test_rendering_does_not_block_other_requests(emulator: Any, tmp_path: Path) -> None:
    from prefect_lipsync.media.synth import make_talking_card

    long_card = make_talking_card(tmp_path / "long.mp4", duration=12, size=(320, 180))
    api = emulator(latency=0)
    video = api.upload(long_card)["mediaUUID"]
    item = api.run(inputs={"video": video}, speech={"text": "slow render"}, outputFormat="WEBM")[0]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        download = pool.submit(httpx.get, item["videoURL"], timeout=120)
        time.sleep(0.1)
        latencies = []
        while not download.done():
            started = time.monotonic()
            assert api.poll(item["taskUUID"]).status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
        assert download.result().status_code == 200
    assert len(latencies) >= 3, "the render finished too fast to tell"
    assert max(latencies) < 0.5, latencies


def test_webhook_body_can_be_a_data_envelope_and_failures_are_posted(
    emulator: Any, card: Path, receiver: Any
) -> None:
    api = emulator(latency=0, webhook_shape="data")
    video = api.upload(card)["mediaUUID"]
    api.submit(inputs={"video": video}, speech={"text": "x"}, webhookURL=f"{receiver.url}/ok")
    body = json.loads(receiver.wait_for("POST", 1)[0][2])
    assert body["data"][0]["status"] == "success"
    failing = emulator(latency=0, task_error_rate=1.0, seed=0)
    video = failing.upload(card)["mediaUUID"]
    for text in "ab":  # seed 0: one failure in each shape
        failing.submit(inputs={"video": video}, speech={"text": text}, webhookURL=f"{receiver.url}/fail")
    bodies = [json.loads(c[2]) for c in receiver.wait_for("POST", 3)[1:]]
    shapes = {"errors" if "errors" in b else "data" for b in bodies}
    assert shapes == {"errors", "data"}
    codes_seen = [b["errors"][0]["code"] if "errors" in b else b["error"]["code"] for b in bodies]
    assert codes_seen == ["timeoutProvider"] * 2


def test_looser_service_shapes_can_be_turned_on(emulator: Any, card: Path) -> None:
    api = emulator(latency=0, empty_ack_rate=1.0, statusless_success_rate=1.0)
    video = api.upload(card)["mediaUUID"]
    task_uuid = str(uuid.uuid4())
    task = {
        "taskType": "videoInference",
        "taskUUID": task_uuid,
        "model": "sync:3@0",
        "inputs": {"video": video},
    }
    ack = api.post([{**task, "speech": {"text": "x"}}])
    assert ack.status_code == 200 and ack.json() == {"data": []}
    item = api.poll(task_uuid).json()["data"][0]
    assert "status" not in item and item["videoURL"] and item["taskUUID"] == task_uuid


def test_an_output_that_cannot_be_rendered_answers_500_render_failed_with_its_task(
    emulator: Any, card: Path, tmp_path: Path
) -> None:
    api = emulator(latency=0)
    video = api.upload(card)["mediaUUID"]
    garbage = tmp_path / "not-audio.wav"
    garbage.write_bytes(b"RIFF but not a wave file at all" * 10)
    audio = api.upload(garbage)["mediaURL"]
    [item] = api.run(
        inputs={"video": video}, settings={"segments": [{"startTime": 0.5, "endTime": 1.5, "audio": audio}]}
    )
    answer = api.http.get(item["videoURL"])
    assert answer.status_code == 500
    [error] = answer.json()["errors"]
    assert error["code"] == "renderFailed" and error["taskUUID"] == item["taskUUID"]
    assert "could not render" in error["message"] and "\n" not in error["message"]
