"""One Runware client per process and event loop, so that every wait shares one batched poller.

Prefect runs the async tasks of an async flow on the flow's event loop; a client (an
`httpx.AsyncClient` plus its poller) belongs to one loop. Clients are keyed by loop and endpoint,
never passed as task parameters, and never part of a cache key. Uploads are remembered in the
endpoint's journal on disk, so a resumed run uploads nothing again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from prefect_lipsync.pipeline import JobJournal

if TYPE_CHECKING:
    from prefect_lipsync.blocks.credentials import RunwareCredentials
    from prefect_lipsync.runware.client import RunwareClient

_clients: dict[tuple[int, str, str], RunwareClient] = {}
_sessions: dict[tuple[int, str, str], int] = {}


def _key(credentials: RunwareCredentials) -> tuple[int, str, str]:
    # The key's digest only tells two credentials apart in memory; it is never stored or logged.
    digest = hashlib.sha256(credentials.api_key.get_secret_value().encode()).hexdigest()[:16]
    return (id(asyncio.get_running_loop()), credentials.base_url.rstrip("/"), digest)


async def shared_client(credentials: RunwareCredentials) -> RunwareClient:
    """The client of this event loop for these credentials, opened on first use."""
    key = _key(credentials)
    client = _clients.get(key)
    if client is None:
        journal = JobJournal.for_endpoint(credentials.base_url)
        client = credentials.get_client(upload_cache=journal.uploads)
        await client.__aenter__()
        _clients[key] = client
    return client


@contextlib.asynccontextmanager
async def client_session(credentials: RunwareCredentials) -> AsyncIterator[RunwareClient]:
    """Hold the shared client open for a flow; the last flow (of nested or concurrent ones) closes it."""
    key = _key(credentials)
    _sessions[key] = _sessions.get(key, 0) + 1
    try:
        yield await shared_client(credentials)
    finally:
        _sessions[key] -= 1
        if _sessions[key] == 0:
            del _sessions[key]
            client = _clients.pop(key, None)
            if client is not None:
                await client.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def task_client(credentials: RunwareCredentials) -> AsyncIterator[RunwareClient]:
    """The client a public task uses: the flow's shared one when a flow holds it open on this loop (one
    poller for all its jobs), else one of its own for the call, closed after it."""
    client = _clients.get(_key(credentials)) if _key(credentials) in _sessions else None
    if client is not None:
        yield client
        return
    journal = JobJournal.for_endpoint(credentials.base_url)
    async with credentials.get_client(upload_cache=journal.uploads) as own:
        yield own
