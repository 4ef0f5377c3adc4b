"""The webhook receiver: secret token, both body shapes, dedupe, hand-off to subscribers."""

from __future__ import annotations

import httpx

from prefect_lipsync.runware import ErrorItem, Sync3Result, WebhookReceiver, serve_webhooks

TASK = "3f1c2a4e-8b7d-4c1e-9a2b-1234567890ab"


def _item(video_uuid: str) -> dict[str, object]:
    return {"taskType": "videoInference", "taskUUID": TASK, "status": "success", "videoUUID": video_uuid,
            "videoURL": f"https://cdn.example.com/{video_uuid}.mp4"}  # fmt: skip


def test_receiver_checks_token_accepts_both_shapes_and_dedupes() -> None:
    receiver = WebhookReceiver(token="s3cret-token-value")
    got: list[Sync3Result | ErrorItem] = []
    receiver.subscribe(got.append)
    with serve_webhooks(receiver) as base, httpx.Client(timeout=5) as http:
        url = receiver.webhook_url()
        assert url.startswith(base) and "token=s3cret-token-value" in url
        wrong = http.post(f"{base}{receiver.path}?token=guess", json=_item("v1"))
        missing = http.post(f"{base}{receiver.path}", json=_item("v1"))
        flat = http.post(url, json=_item("v1"))
        wrapped = http.post(url, json={"data": [_item("v2")]})
        repeat = http.post(url, json=_item("v1"))  # the provider retries: not a new result
        failed = http.post(url, json={"errors": [{"code": "timeoutProvider", "taskUUID": TASK}]})
        garbage = http.post(url, content=b"not json")
    assert (wrong.status_code, missing.status_code) == (403, 403)
    assert [r.status_code for r in (flat, wrapped, repeat, failed)] == [200] * 4
    assert garbage.status_code == 400
    assert [getattr(i, "video_uuid", None) for i in got] == ["v1", "v2", None]
    assert isinstance(got[2], ErrorItem) and got[2].code == "timeoutProvider"
    assert (receiver.received, receiver.duplicates, receiver.refused) == (3, 1, 2)
    assert "s3cret" not in repr(receiver)
    assert receiver.public_url is None  # given back when the server stops
