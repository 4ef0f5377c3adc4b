"""Prefect tasks that talk to Runware: prepare and upload media, submit, wait, download.

Idempotence, not retries, is what makes a re-run safe here: the taskUUID is derived from the
request's content, so a submit re-sent after a crash meets `conflictTaskUUID` and is polled instead
of paid twice; uploads and submits are also cached on content (never on a client or a key).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.manifest import PlannedAudioOp
from prefect_lipsync.media.audio_ops import render_audio_op
from prefect_lipsync.media.hashing import cached_file_sha256
from prefect_lipsync.runware.ids import derive_task_uuid
from prefect_lipsync.runware.models import Sync3Request, Sync3Result
from prefect_lipsync.runware.uploads import local_path
from prefect_lipsync.tasks.clients import shared_client

# Uploaded media may be purged by the service after a while; a day-old upload is redone.
UPLOAD_CACHE_TTL = timedelta(hours=20)


def _endpoint_id(credentials: RunwareCredentials) -> str:
    # The endpoint, never the key: caches must not change (or leak) with a secret.
    return credentials.base_url.rstrip("/")


def _prepare_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    request: dict[str, Any] = parameters["request"]
    ops: list[PlannedAudioOp] = parameters.get("audio_ops") or []
    rendered = {op.output_uri for op in ops}  # exist only after rendering: their content_key stands in
    content = {
        "endpoint": _endpoint_id(parameters["credentials"]),
        "request": request,
        "ops": [op.content_key for op in ops],  # the key covers the source's content
        "nonce": parameters.get("nonce"),
        # Content, not names: a file edited in place is uploaded again.
        "files": {
            ref: cached_file_sha256(local_path(ref))
            for ref in Sync3Request.model_validate(request).local_refs()
            if ref not in rendered
        },
    }
    return "lipsync-prepare-" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@task(
    name="prepare-and-upload-media",
    description="Render planned audio operations, upload local files, and return the request with their URLs.",
    cache_key_fn=_prepare_cache_key,
    cache_expiration=UPLOAD_CACHE_TTL,
    persist_result=True,
)
async def prepare_media(
    request: dict[str, Any],
    credentials: RunwareCredentials,
    audio_ops: list[PlannedAudioOp] | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Upload every local file of the request once (its audio operations already rendered) and swap in URLs.

    The returned request carries its taskUUID, derived from the content of the files rather than
    from their upload URLs, so the same job keeps the same UUID however often it is prepared.
    """
    client = await shared_client(credentials)
    prepared = await client.upload_local_refs(Sync3Request.model_validate(request), nonce=nonce)
    if prepared.task_uuid is None:
        prepared = prepared.model_copy(update={"task_uuid": derive_task_uuid(prepared, nonce)})
    return prepared.to_wire()


def _submit_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    uuid = parameters["request"]["taskUUID"]
    return f"lipsync-submit-{hashlib.sha256((_endpoint_id(parameters['credentials']) + uuid).encode()).hexdigest()}"


@task(
    name="render-planned-audio",
    description="Render the planned crops and tempo changes of a job's audio (cached by content).",
)
async def render_planned_audio(audio_ops: list[PlannedAudioOp]) -> list[str]:
    """Write each planned audio operation where the request already names it; existing outputs are reused."""
    import anyio

    rendered = []
    for planned in audio_ops:
        path = await anyio.to_thread.run_sync(
            lambda p=planned: render_audio_op(p.op, Path(p.output_path).parent)
        )
        rendered.append(str(path))
    return rendered


@task(
    name="submit-lipsync",
    description="Submit one sync-3 job; its taskUUID comes from its content, so a re-run never pays twice.",
    cache_key_fn=_submit_cache_key,
    persist_result=True,
)
async def submit_lipsync(request: dict[str, Any], credentials: RunwareCredentials) -> str:
    """Submit a prepared `request` (media uploaded, taskUUID set) and return its taskUUID."""
    client = await shared_client(credentials)
    return await client.submit(Sync3Request.model_validate(request))


@task(
    name="wait-for-lipsync",
    description="Wait for one job's results; all waits of a process share one batched poller.",
)
async def wait_for_lipsync(
    task_uuid: str, credentials: RunwareCredentials, number_results: int = 1, timeout_s: float = 3600
) -> list[Sync3Result]:
    """Wait until the job has `number_results` results; raise the service's error if it failed."""
    client = await shared_client(credentials)
    results = await client.wait(task_uuid, number_results=number_results, timeout=timeout_s)
    return list(results)


@task(
    name="download-lipsync-result",
    description="Stream one result to a temp file and rename it into place when complete.",
    retries=2,
    retry_delay_seconds=[2, 10],  # a download is safe to repeat; nothing is paid
)
async def download_lipsync_result(
    result: Sync3Result, credentials: RunwareCredentials, destination: str
) -> str:
    """Download `result` to `destination` (atomically) and return the path."""
    dest = Path(destination)
    marker = dest.with_name(f".{dest.name}.video-uuid")
    if result.video_uuid and dest.exists() and marker.exists() and marker.read_text() == result.video_uuid:
        return str(dest)  # this very result was downloaded by an earlier run
    client = await shared_client(credentials)
    path = await client.download(result, dest)
    marker.write_text(result.video_uuid or "")
    return str(path)
