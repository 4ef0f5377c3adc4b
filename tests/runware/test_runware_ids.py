"""Content-derived taskUUIDs: the idempotency key of a paid submit."""

from __future__ import annotations

import uuid

from prefect_lipsync.runware.ids import derive_task_uuid, retry_task_uuid, uuid4_from_digest, with_task_uuid
from prefect_lipsync.runware.models import Sync3Request, is_uuid4


def _request(**extra: object) -> Sync3Request:
    payload: dict[str, object] = {
        "taskType": "videoInference",
        "model": "sync:3@0",
        "inputs": {"video": "https://example.com/v.mp4", "audio": "https://example.com/a.wav"},
    }
    payload.update(extra)
    return Sync3Request.model_validate(payload)


def test_derived_uuid_is_version_4_with_rfc_variant() -> None:
    for seed in range(64):
        value = uuid4_from_digest(bytes([seed]) * 32)
        assert is_uuid4(value)
        assert uuid.UUID(value).variant == uuid.RFC_4122


def test_same_content_gives_same_uuid_across_key_order_and_alias() -> None:
    a = _request(outputQuality=80)
    b = Sync3Request.model_validate(
        {
            "outputQuality": 80,
            "inputs": {"audio": "https://example.com/a.wav", "video": "https://example.com/v.mp4"},
            "model": "sync:lipsync@3",
        }
    )
    assert derive_task_uuid(a) == derive_task_uuid(b)


def test_any_content_change_gives_another_uuid() -> None:
    base = derive_task_uuid(_request())
    assert derive_task_uuid(_request(outputQuality=80)) != base
    assert derive_task_uuid(_request(numberResults=2)) != base


def test_nonce_makes_a_deliberate_rerun_a_new_task() -> None:
    req = _request()
    assert derive_task_uuid(req, nonce=1) != derive_task_uuid(req)
    assert derive_task_uuid(req, nonce=1) == derive_task_uuid(req, nonce="1")


def test_webhook_url_and_task_uuid_are_not_content() -> None:
    plain = _request()
    hooked = _request(webhookURL="https://hooks.example.com/x?token=abc")
    explicit = _request(taskUUID="3f1c2a4e-8b7d-4c1e-9a2b-1234567890ab")
    assert derive_task_uuid(plain) == derive_task_uuid(hooked) == derive_task_uuid(explicit)


def test_with_task_uuid_keeps_a_callers_uuid_and_fills_a_missing_one() -> None:
    explicit = _request(taskUUID="3f1c2a4e-8b7d-4c1e-9a2b-1234567890ab")
    assert with_task_uuid(explicit).task_uuid == "3f1c2a4e-8b7d-4c1e-9a2b-1234567890ab"
    filled = with_task_uuid(_request())
    assert filled.task_uuid == derive_task_uuid(_request())
    assert filled.to_wire()["taskUUID"] == filled.task_uuid


def test_retry_uuids_are_distinct_stable_and_version_4() -> None:
    base = derive_task_uuid(_request())
    first, second = retry_task_uuid(base, 1), retry_task_uuid(base, 2)
    assert len({base, first, second}) == 3
    assert first == retry_task_uuid(base.upper(), 1)
    assert is_uuid4(first) and is_uuid4(second)


def test_delivery_details_do_not_change_the_task_uuid_but_content_does() -> None:
    base = {"inputs": {"video": "https://x/v.mp4", "audio": "https://x/a.wav"}}
    same = {
        **base,
        "ttl": 7200,
        "includeCost": True,
        "uploadEndpoint": "https://bucket/out.mp4",
        "webhookURL": "https://hooks/x?token=t",
    }
    other = {**base, "outputQuality": 80}
    assert derive_task_uuid(base) == derive_task_uuid(same)
    assert derive_task_uuid(base) != derive_task_uuid(other)
