"""Every HTTP client of the package shares one TLS context: building one loads the system's certificates,
and a night's batch opens a client per download (a tenth of the flow process's CPU before)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from prefect_lipsync.pipeline.steps import download_output
from prefect_lipsync.runware import RunwareClient
from prefect_lipsync.runware.models import Sync3Result
from prefect_lipsync.tls import shared_tls_context

from .conftest import Reply, scripted_server


@pytest.fixture
def contexts_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts TLS contexts built from here on (httpx builds its own through this call)."""
    built: list[int] = []
    original = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        built.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    shared_tls_context.cache_clear()
    return built


async def test_downloads_without_a_client_build_one_tls_context(
    tmp_path: Path, contexts_built: list[int]
) -> None:
    with scripted_server([Reply(200, b"video bytes")]) as server:
        for i in range(5):
            result = Sync3Result.model_validate(
                {"taskUUID": f"t-{i}", "videoUUID": f"v-{i}", "videoURL": f"{server.url}/outputs/{i}.mp4"}
            )
            where = await download_output(result, tmp_path / f"{i}.mp4")
            assert Path(where).read_bytes() == b"video bytes"
    assert len(server.seen) == 5
    assert len(contexts_built) == 1


async def test_clients_share_the_process_tls_context(contexts_built: list[int]) -> None:
    for _ in range(3):
        async with RunwareClient(api_key=SecretStr("sk-test"), base_url="https://example.invalid/v1"):
            pass
    assert len(contexts_built) == 1
