"""The blocks: Prefect's standard suite, registration, and an API key that stays secret."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr

import prefect_lipsync
from prefect_lipsync.blocks import LipsyncSettings, RunwareCredentials
from prefect_lipsync.runware.client import RunwareClient

LOGO = Path(prefect_lipsync.__file__).parent / "assets" / "logo.png"
KEY = "rw-test-KEY-0123456789-distinctive"


@pytest.fixture(scope="module")
def logo_url() -> Iterator[str]:
    """The packaged logo over loopback HTTP: the suite's image check runs offline but for real."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = LOGO.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/logo.png"
    server.shutdown()


@pytest.mark.parametrize("block_class", [RunwareCredentials, LipsyncSettings])
class TestBlocksAdhereToPrefectStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block_class: type[Block], logo_url: str, monkeypatch: pytest.MonkeyPatch) -> type[Block]:
        monkeypatch.setattr(block_class, "_logo_url", logo_url)
        return block_class


def test_credentials_block_slug_is_runware_credentials() -> None:
    assert RunwareCredentials.get_block_type_slug() == "runware-credentials"


def test_api_key_is_masked_in_repr_dump_and_saved_document() -> None:
    creds = RunwareCredentials(api_key=SecretStr(KEY))
    assert KEY not in repr(creds)
    assert KEY not in creds.model_dump_json()
    assert KEY not in str(creds.model_dump())


async def test_saved_block_loads_back_with_its_secret_and_the_api_hides_it() -> None:
    await RunwareCredentials(api_key=SecretStr(KEY), base_url="http://127.0.0.1:9/v1").save(
        "secret-test", overwrite=True
    )
    loaded = await RunwareCredentials.load("secret-test")
    assert loaded.api_key.get_secret_value() == KEY
    async with get_client() as client:
        document = await client.read_block_document_by_name(
            name="secret-test", block_type_slug="runware-credentials", include_secrets=False
        )
    assert KEY not in str(document.data)


def test_get_client_gives_a_fresh_runware_client_with_the_blocks_endpoint() -> None:
    creds = RunwareCredentials(api_key=SecretStr(KEY), base_url="http://127.0.0.1:9/v1")
    first, second = creds.get_client(), creds.get_client()
    assert isinstance(first, RunwareClient) and first is not second
    assert first.base_url.rstrip("/") == "http://127.0.0.1:9/v1"
    assert KEY not in repr(first)


async def test_server_with_the_package_installed_lists_the_blocks_without_registering() -> None:
    async with get_client() as client:
        slugs = {b.slug for b in await client.read_block_types()}
    assert {"runware-credentials", "lipsync-settings"} <= slugs


def test_prefect_block_register_module_registers_both_blocks() -> None:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value() or ""}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "prefect_lipsync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RunwareCredentials" in done.stdout.replace(" ", "") or "Runware Credentials" in done.stdout
    assert "Lipsync" in done.stdout
