"""Dropping a connection without an answer, as a flaky network or a crashed gateway would (HTTP or WebSocket).

ASGI gives an app no way to close its socket: a uvicorn protocol subclass records each
connection's transport by (server address, client address), which the scope also carries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

_Address = tuple[Any, ...]
_TRANSPORTS: dict[tuple[_Address | None, _Address | None], asyncio.Transport] = {}


def _key(server: Any, client: Any) -> tuple[_Address | None, _Address | None]:
    return (tuple(server) if server else None, tuple(client) if client else None)


class DroppableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with its transport findable from a request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _TRANSPORTS[_key(self.server, self.client)] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        _TRANSPORTS.pop(_key(self.server, self.client), None)
        super().connection_lost(exc)


async def drop_connection(scope: dict[str, Any], send: Any) -> None:
    """Close the request's connection at once; the client sees a reset, not an HTTP answer."""
    transport = _TRANSPORTS.get(_key(scope.get("server"), scope.get("client")))
    if transport is not None:
        transport.abort()
        # Let uvicorn see the connection is gone, so it sends no 500 of its own.
        for _ in range(3):
            await asyncio.sleep(0)
        return
    # Not served by our protocol: start an answer and never finish it, uvicorn then closes.
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})


def abort_connection(scope: dict[str, Any]) -> bool:
    """Reset the connection a scope (HTTP or an upgraded WebSocket) runs on; False if unknown."""
    transport = _TRANSPORTS.pop(_key(scope.get("server"), scope.get("client")), None)
    if transport is None:
        return False
    transport.abort()
    return True


def forget_connection(scope: dict[str, Any]) -> None:
    """Drop the record of an upgraded (WebSocket) connection: its H11 protocol is never told it closed."""
    _TRANSPORTS.pop(_key(scope.get("server"), scope.get("client")), None)
