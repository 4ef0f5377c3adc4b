"""A small ASGI receiver for Runware webhooks, and a helper that serves it on loopback.

Runware signs nothing: the provider's advice is a secret token in the webhook URL's query, which
the receiver compares in constant time. It accepts every body shape seen (a flat item,
`{"data": [...]}`, `{"errors": [...]}`), drops repeats of (taskUUID, videoUUID) (the provider
retries non-2xx answers), and hands each result to its subscribers (a `RunwareClient` in webhook
mode). The URL holds the token: treat it as a secret (the server runs with its access log off).
A body it cannot read (not JSON, too big, too deep, out-of-range numbers, lone surrogates) gets
a 400 in the service's own error shape, `{"errors": [{"code", "message"}]}`, never a 500.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from prefect_lipsync.runware.models import ErrorItem, Sync3Result, parse_webhook_body
from prefect_lipsync.safe_json import JSONLimitError, loads

log = logging.getLogger("prefect_lipsync.runware")

Subscriber = Callable[[Sync3Result | ErrorItem], None]
_SEEN_MAX = 100_000
#: A webhook body is one result (or a few): anything bigger is not from the service.
MAX_BODY_BYTES = 1 << 20


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """An answer in the service's error shape."""
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (JSONLimitError) as soon as it grows past `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise JSONLimitError(f"the body is larger than the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise JSONLimitError(f"the body is larger than the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _dedupe_key(item: Sync3Result | ErrorItem) -> tuple[str, str] | None:
    """(taskUUID, which result); None for progress-only items, which are never deduped."""
    task = item.task_uuid or ""
    if isinstance(item, ErrorItem):
        return (task, f"error:{item.code}")
    if item.is_error:
        return (task, "error")
    if not item.is_terminal:
        return None
    return (task, item.video_uuid or item.video_url or "result")


class WebhookReceiver:
    """Receives Runware webhook POSTs at `path?token=...` and hands results to subscribers."""

    def __init__(
        self,
        token: str | SecretStr | None = None,
        *,
        path: str = "/runware/webhook",
        public_url: str | None = None,
    ) -> None:
        raw = token.get_secret_value() if isinstance(token, SecretStr) else token
        self._token = SecretStr(raw or secrets.token_urlsafe(32))
        self.path = path
        #: Where the service reaches this receiver, e.g. "https://hooks.example.com" (no path).
        self.public_url = public_url
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self.received = 0
        self.duplicates = 0
        self.refused = 0
        self.app = Starlette(routes=[Route(path, self._handle, methods=["POST"])])

    def __repr__(self) -> str:
        return f"WebhookReceiver(path={self.path!r}, public_url={self.public_url!r}, token=**********)"

    def webhook_url(self, public_url: str | None = None) -> str:
        """The URL to send as `webhookURL` (it carries the secret token)."""
        base = public_url or self.public_url
        if not base:
            raise ValueError("the receiver has no public URL: serve it (serve_webhooks) or pass public_url")
        query = urlencode({"token": self._token.get_secret_value()})
        return f"{base.rstrip('/')}{self.path}?{query}"

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with each new result; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(subscriber)

        return unsubscribe

    def token_matches(self, candidate: str | None) -> bool:
        expected = self._token.get_secret_value().encode()
        return hmac.compare_digest(expected, (candidate or "").encode())

    def deliver(self, body: object) -> int:
        """Dispatch the results of one webhook body; returns how many were new."""
        items = parse_webhook_body(body)
        fresh: list[Sync3Result | ErrorItem] = []
        with self._lock:
            for item in items:
                key = _dedupe_key(item)
                if key is not None:
                    if key in self._seen:
                        self.duplicates += 1
                        continue
                    self._seen[key] = None
                    if len(self._seen) > _SEEN_MAX:
                        self._seen.popitem(last=False)
                fresh.append(item)
            self.received += len(fresh)
            subscribers = list(self._subscribers)
        for item in fresh:
            for subscriber in subscribers:
                try:
                    subscriber(item)
                except Exception:  # one broken subscriber must not make the provider retry
                    log.exception("webhook subscriber failed for task %s", item.task_uuid)
        return len(fresh)

    async def _handle(self, request: Request) -> JSONResponse:
        if not self.token_matches(request.query_params.get("token")):
            self.refused += 1
            return error_response(403, "forbidden", "the webhook token is missing or wrong")
        try:
            body = loads(await _read_body(request, MAX_BODY_BYTES))
        except JSONLimitError as exc:
            log.warning("webhook body refused: %s", exc)
            return error_response(400, "invalidJSON", f"the body cannot be read: {exc}")
        try:
            fresh = self.deliver(body)
        except (ValueError, TypeError) as exc:  # pydantic: an item without a taskUUID, say
            log.warning("webhook body refused: %s", type(exc).__name__)
            return error_response(400, "invalidResult", "the body is JSON but not a Runware result")
        return JSONResponse({"ok": True, "new": fresh})


@contextlib.contextmanager
def serve_webhooks(
    receiver: WebhookReceiver, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 10.0
) -> Iterator[str]:
    """Serve the receiver with uvicorn in a background thread; yields its base URL.

    Sets `receiver.public_url` when it has none, so a client in webhook mode can use it as is.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    # access_log off: the request line holds the token.
    config = uvicorn.Config(receiver.app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="runware-webhooks", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the webhook receiver did not start")
        time.sleep(0.01)
    base = f"http://{host}:{bound_port}"
    own_url = receiver.public_url is None
    if own_url:
        receiver.public_url = base
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        if own_url:
            receiver.public_url = None
