"""The emulator's HTTP face: a Starlette app speaking the Runware REST protocol.

Routes: `POST /v1` (the API), WebSocket `/v1` (the same API on one connection, `websocket_api`),
`GET /outputs/{videoUUID}.{ext}` (results, rendered on first download), `GET /media/{name}`
(uploads), `GET /_emulator/stats`, `POST /_emulator/reset`, `POST /_emulator/advance` (move the
clock: finish jobs, expire outputs without waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from prefect_lipsync.emulator.body import Body, parse_body, receive_body, spills_in
from prefect_lipsync.emulator.config import EmulatorConfig
from prefect_lipsync.emulator.connections import drop_connection
from prefect_lipsync.emulator.errors import error_item, status_for_errors
from prefect_lipsync.emulator.faults import HttpFault
from prefect_lipsync.emulator.render import CONTENT_TYPES
from prefect_lipsync.emulator.service import Answer, Emulator
from prefect_lipsync.emulator.strict_json import BodyError
from prefect_lipsync.emulator.strict_json import loads as strict_loads
from prefect_lipsync.emulator.websocket_api import bearer_key, websocket_endpoint_for
from prefect_lipsync.media.errors import FFmpegTimeout, MediaError

log = logging.getLogger("prefect_lipsync.emulator")


class _Dropped(Response):
    """A 'response' that closes the connection instead of answering."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await drop_connection(dict(scope), send)


def _errors(status: int, *errors: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": list(errors)}, status_code=status, headers=headers)


def _fault_response(fault: HttpFault) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if fault.html:
        return HTMLResponse(fault.html_body(), status_code=fault.status, headers=headers)
    return _errors(fault.status, error_item(fault.code, f"{fault.reason} (emulated fault)"), headers=headers)


def _tail(text: str, chars: int = 600) -> str:
    """The end of a long message (ffmpeg's stderr ends with what went wrong), on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else "..." + flat[-chars:]


def _key_of(request: Request) -> str | None:
    return bearer_key(request.headers.get("authorization", ""))


def create_app(config: EmulatorConfig, storage: Path) -> Starlette:
    """The ASGI app. `storage` holds uploads and outputs; the caller owns (and removes) it."""
    emulator = Emulator(config, storage)

    def key_ok(key: str | None) -> bool:
        if not key:
            return False
        return config.api_key is None or hmac.compare_digest(key.encode(), config.api_key.encode())

    def urls(request: Request) -> tuple[str, str]:
        root = str(request.base_url).rstrip("/")
        return f"{root}/outputs", f"{root}/media"

    async def api(request: Request) -> Response:
        emulator.stats.bump("http_requests")
        if emulator.faults.drop():
            emulator.stats.bump("fault_drops")
            return _Dropped()
        fault = emulator.faults.http_error()
        if fault is not None:
            emulator.stats.bump("fault_http_errors")
            return _fault_response(fault)
        wait = emulator.faults.rate_limited()
        if wait is not None:
            emulator.stats.bump("fault_rate_limited")
            return _errors(
                429,
                error_item("rateLimitExceeded", "too many requests per second (emulated rate limit)"),
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        if emulator.faults.slow():
            emulator.stats.bump("fault_slow")
            await asyncio.sleep(config.slow_seconds)

        header_key = _key_of(request)
        if header_key is not None and not key_ok(header_key):
            return _errors(401, error_item("invalidApiKey", "the API key is not valid"))
        try:
            body = await receive_body(request.stream(), emulator.tmp_dir)
        except OSError as exc:
            return _errors(
                500, error_item("internalServerError", f"could not store the body: {exc.strerror}")
            )
        try:
            tasks = await _parse(body, emulator.tmp_dir)
        except BodyError as exc:
            return _errors(400, error_item("invalidRequestBody", str(exc)))
        finally:
            body.discard()
        try:
            return await _answer(request, tasks, header_key)
        finally:
            for spilled in spills_in(tasks):
                spilled.path.unlink(missing_ok=True)

    async def _answer(request: Request, tasks: Any, header_key: str | None) -> Response:
        if not isinstance(tasks, list) or not tasks:
            return _errors(
                400,
                error_item("invalidRequestBody", "the body must be a non-empty JSON array of task objects"),
            )
        if header_key is None:
            first = tasks[0] if isinstance(tasks[0], dict) else {}
            body_key = first.get("apiKey") if first.get("taskType") == "authentication" else None
            if not isinstance(body_key, str) or not key_ok(body_key):
                code = "missingApiKey" if body_key is None else "invalidApiKey"
                return _errors(
                    401,
                    error_item(
                        code, "send the API key as 'Authorization: Bearer <key>' (or an authentication task)"
                    ),
                )
        polls = sum(1 for t in tasks if isinstance(t, dict) and t.get("taskType") == "getResponse")
        if config.reject_batch_polls and polls > 1:
            emulator.stats.bump("batch_poll_rejections")
            return _errors(
                400,
                error_item(
                    "unsupportedBatchRequest",
                    f"only one getResponse task per request is allowed here, got {polls}",
                    task_type="getResponse",
                ),
            )
        outputs_url, media_url = urls(request)
        answer = await emulator.handle_tasks(tasks, outputs_url, media_url)
        if answer.accepted:
            lost = emulator.faults.lose_submit()
            if lost is not None:
                emulator.stats.bump("fault_lost_submits")
                if lost == "drop":
                    return _Dropped()
                return HTMLResponse(HttpFault(502, None, True).html_body(), status_code=502)
        return _envelope(answer)

    async def output(request: Request) -> Response:
        name = request.path_params["name"]
        found = emulator.output_for(name)
        if found is None:
            return _errors(404, error_item("mediaNotFound", f"no output named {name}"))
        job, result = found
        if emulator.is_expired(job):
            emulator.stats.bump("expired_downloads")
            return _errors(404, error_item("mediaExpired", f"output {name} expired (ttl {job.ttl} s)"))
        if result.first_get_fault is not None and request.method == "GET":
            status, result.first_get_fault = result.first_get_fault, None
            emulator.stats.bump("fault_download_errors")
            if status == 502:
                return HTMLResponse(HttpFault(502, None, True).html_body(), status_code=502)
            return _errors(422, error_item("mediaNotReady", "the output is not ready yet; retry shortly"))
        try:
            path = await emulator.ensure_rendered(job, job.results.index(result))
        except FFmpegTimeout as exc:  # a busy machine: another try may well succeed
            log.warning("emulator: rendering %s timed out: %s", job.task_uuid, exc)
            return _errors(
                503,
                error_item(
                    "renderTimeout",
                    f"the emulator did not finish rendering this output in time: {exc.message}",
                    task_uuid=job.task_uuid,
                ),
            )
        except MediaError as exc:  # the same request renders the same way: asking again cannot help
            log.warning("emulator: rendering %s failed: %s", job.task_uuid, exc)
            return _errors(
                500,
                error_item(
                    "renderFailed",
                    f"the emulator could not render this output: {_tail(exc.message)}",
                    task_uuid=job.task_uuid,
                ),
            )
        if request.method == "GET":
            emulator.stats.bump("downloads")
            emulator.stats.bump("download_bytes", path.stat().st_size)
        return FileResponse(path, media_type=CONTENT_TYPES[job.ext], filename=name)

    async def media(request: Request) -> Response:
        stored = emulator.media.by_name(request.path_params["name"])
        if stored is None or not stored.path.exists():
            return _errors(404, error_item("mediaNotFound", "no such media"))
        return FileResponse(stored.path)

    async def stats(request: Request) -> Response:
        return JSONResponse(emulator.snapshot())

    async def reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse({"reset": True})

    async def advance(request: Request) -> Response:
        try:
            seconds = float(strict_loads(await request.body()).get("seconds", 0))
        except (ValueError, TypeError, AttributeError):
            return _errors(400, error_item("invalidRequestBody", 'send {"seconds": N}'))
        emulator.clock.advance(seconds)
        return JSONResponse({"advanced": seconds})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await emulator.start()
        try:
            yield
        finally:
            await emulator.close()

    app = Starlette(
        routes=[
            Route("/v1", api, methods=["POST"]),
            WebSocketRoute("/v1", websocket_endpoint_for(emulator, key_ok)),
            Route("/outputs/{name}", output, methods=["GET", "HEAD"]),
            Route("/media/{name}", media, methods=["GET", "HEAD"]),
            Route("/_emulator/stats", stats, methods=["GET"]),
            Route("/_emulator/reset", reset, methods=["POST"]),
            Route("/_emulator/advance", advance, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.emulator = emulator
    return app


async def _parse(body: Body, spill_dir: Path) -> Any:
    if body.data is not None and len(body.data) < 1024 * 1024:
        return parse_body(body, spill_dir)
    return await anyio.to_thread.run_sync(parse_body, body, spill_dir)


def _envelope(answer: Answer) -> JSONResponse:
    content: dict[str, Any] = {"data": answer.data}
    if answer.errors:
        content["errors"] = answer.errors
    # A POST that produced nothing but request-level errors answers with their status; task
    # failures reported by getResponse ride on a 200, as on the service.
    request_level = [e for e in answer.errors if e.get("status") != "error"]
    if not answer.data and request_level and len(request_level) == len(answer.errors):
        return JSONResponse(content, status_code=status_for_errors(request_level))
    return JSONResponse(content)
