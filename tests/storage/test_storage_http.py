"""Remote media over plain http(s) (presigned URLs, a CDN) and a storage service that does not answer."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prefect_lipsync.storage import MediaCache, StorageAccessDenied, StorageUnavailable

BODY = bytes(range(256)) * 40


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}  # noqa: RUF012  # shared by every request of the test server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        _Handler.hits[path] = _Handler.hits.get(path, 0) + 1
        if path == "/forbidden.mp4":
            self.send_response(403)
            self.end_headers()
            return
        self.send_response(200)
        if path == "/tagged.wav":
            self.send_header("ETag", '"v1"')
        elif path == "/weak.wav":
            self.send_header("ETag", 'W/"v1"')
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    _Handler.hits = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_url_with_an_etag_is_fetched_once(cache: MediaCache, http_base: str) -> None:
    first = cache.materialize(f"{http_base}/tagged.wav?token=one")
    again = cache.materialize(f"{http_base}/tagged.wav?token=two")
    assert first == again and first.read_bytes() == BODY
    assert first.suffix == ".wav"
    # The second GET was answered from the cache: its body was never read into a new entry.
    assert len(cache.entries()) == 1


def test_an_url_without_a_strong_etag_is_stored_by_its_content_hash(
    cache: MediaCache, http_base: str
) -> None:
    plain = cache.materialize(f"{http_base}/plain.wav")
    weak = cache.materialize(f"{http_base}/weak.wav")
    assert plain.name == hashlib.sha256(BODY).hexdigest() + ".wav"
    assert weak == plain  # the same bytes: one entry
    assert len(cache.entries()) == 1


def test_a_refused_url_is_an_access_error_with_the_fix(cache: MediaCache, http_base: str) -> None:
    with pytest.raises(StorageAccessDenied) as err:
        cache.materialize(f"{http_base}/forbidden.mp4?X-Amz-Signature=secret123")
    assert "403" in str(err.value) and "presigned URL may have expired" in str(err.value)
    assert "secret123" not in str(err.value)


def test_a_storage_service_that_never_answers_fails_within_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("PREFECT_LIPSYNC_S3_READ_TIMEOUT_S", "0.5")
        monkeypatch.setenv("PREFECT_LIPSYNC_S3_MAX_ATTEMPTS", "1")
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as err:
            MediaCache(tmp_path / "c").materialize("s3://bucket/video.mp4")
        assert time.monotonic() - started < 10
    assert "s3://bucket/video.mp4" in str(err.value) and "AWS_ENDPOINT_URL_S3" in str(err.value)


def test_no_credentials_is_an_access_error_saying_which_variables_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # never reached: signing fails first
    with pytest.raises(StorageAccessDenied) as err:
        MediaCache(tmp_path / "c").materialize("s3://bucket/video.mp4")
    assert "no AWS credentials" in str(err.value) and "AWS_ACCESS_KEY_ID" in str(err.value)
