"""Which Runware endpoint a run talks to: a credentials block (or its name), the environment, or the
local emulator. One resolver for every flow, from sync and async code alike."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import SecretStr

from prefect_lipsync.blocks.credentials import RunwareCredentials

OFFLINE_NOTICE = (
    "No Runware API key is configured (no credentials block, no RUNWARE_API_KEY): running on the LOCAL "
    "EMULATOR. Outputs are dub previews WITHOUT lip movement; nothing is sent to Runware and nothing is "
    "paid (costs shown are estimates of what the real service would charge)."
)
EMULATOR_KEY = "local-emulator"  # the emulator accepts any non-empty key

log = logging.getLogger("prefect_lipsync.tasks")


class MissingCredentials(RuntimeError):
    """No usable key: the named block does not exist, or none is configured and the emulator is not allowed."""


@dataclass(frozen=True)
class Endpoint:
    """Credentials for the run and whether they point at the local emulator."""

    credentials: RunwareCredentials
    offline: bool

    @property
    def base_url(self) -> str:
        return self.credentials.base_url


async def load_credentials_block(name: str) -> RunwareCredentials:
    """The saved RunwareCredentials block `name`; a missing one fails at once, naming it."""
    try:
        loaded = await RunwareCredentials.aload(name)
    except ValueError as exc:  # Prefect says "Unable to find block document named ..."
        raise MissingCredentials(
            f"No RunwareCredentials block named {name!r} on this Prefect server: nothing was uploaded or "
            f"submitted. Create it (RunwareCredentials(api_key=...).save({name!r})) or name an existing one "
            "(prefect block ls)."
        ) from exc
    if not isinstance(
        loaded, RunwareCredentials
    ):  # pragma: no cover - aload returns the class it is called on
        raise MissingCredentials(f"The block {name!r} is not a RunwareCredentials block.")
    return loaded


async def resolve_credentials(
    credentials: RunwareCredentials | None, credentials_block: str | None
) -> RunwareCredentials | None:
    """A block given in hand, or one loaded by its name; never both."""
    if credentials is not None and credentials_block:
        raise MissingCredentials(
            f"Both credentials and credentials_block={credentials_block!r} were given: pass one of them."
        )
    if credentials_block:
        return await load_credentials_block(credentials_block)
    return credentials


@contextlib.asynccontextmanager
async def runware_endpoint(
    credentials: RunwareCredentials | None = None,
    credentials_block: str | None = None,
    base_url: str | None = None,
    *,
    allow_emulator: bool = True,
) -> AsyncIterator[Endpoint]:
    """Resolve the endpoint of a run; with no key at all, start the emulator for the run's duration.

    Order: a credentials block (or its name), at its own endpoint unless `base_url` is given;
    `RUNWARE_API_KEY` from the environment; a base URL (argument or `RUNWARE_BASE_URL`) alone, which
    points at an emulator started elsewhere; else an in-process emulator, if `allow_emulator`.
    """
    block = await resolve_credentials(credentials, credentials_block)
    if block is not None:
        # The block's own endpoint wins over the environment: its key goes only where it says,
        # unless this run names another endpoint explicitly.
        yield Endpoint(block.model_copy(update={"base_url": base_url}) if base_url else block, offline=False)
        return
    url = base_url or os.environ.get("RUNWARE_BASE_URL") or None
    env_key = os.environ.get("RUNWARE_API_KEY")
    if env_key:
        creds = RunwareCredentials(api_key=SecretStr(env_key), **({"base_url": url} if url else {}))
        yield Endpoint(creds, offline=False)
        return
    if url:
        # No key but an endpoint: an emulator started with `prefect-lipsync emulator`.
        yield Endpoint(RunwareCredentials(api_key=SecretStr(EMULATOR_KEY), base_url=url), offline=True)
        return
    if not allow_emulator:
        raise MissingCredentials(
            "No Runware credentials: pass a RunwareCredentials block (credentials or credentials_block) or set "
            "RUNWARE_API_KEY. This run does not allow the local emulator (allow_emulator=false)."
        )
    from prefect_lipsync.emulator import run_emulator

    with run_emulator() as emulator_url:
        yield Endpoint(
            RunwareCredentials(api_key=SecretStr(EMULATOR_KEY), base_url=str(emulator_url)), offline=True
        )


#: The emulator a process starts for tasks called without credentials and without RUNWARE_API_KEY:
#: one per process, kept until it exits, so a submit and a later wait find the same service.
_process_emulator: list[str] = []
_process_emulator_lock = threading.Lock()
_process_emulator_exit = contextlib.ExitStack()


def _emulator_url() -> str:
    with _process_emulator_lock:
        if not _process_emulator:
            from prefect_lipsync.emulator import run_emulator

            _process_emulator.append(str(_process_emulator_exit.enter_context(run_emulator())))
            atexit.register(_process_emulator_exit.close)
            _say(OFFLINE_NOTICE)  # once per process
        return _process_emulator[0]


def task_credentials(credentials: RunwareCredentials | None) -> RunwareCredentials:
    """What a public task called with `credentials=None` uses, as the flows do: `RUNWARE_API_KEY` (at
    `RUNWARE_BASE_URL` if set), else an emulator at `RUNWARE_BASE_URL`, else this process's emulator."""
    if credentials is not None:
        return credentials
    url = os.environ.get("RUNWARE_BASE_URL") or None
    env_key = os.environ.get("RUNWARE_API_KEY")
    if env_key:
        return RunwareCredentials(api_key=SecretStr(env_key), **({"base_url": url} if url else {}))
    return RunwareCredentials(api_key=SecretStr(EMULATOR_KEY), base_url=url or _emulator_url())


def is_emulator(credentials: RunwareCredentials) -> bool:
    """True for the local emulator's stand-in key: its outputs are dub previews, never charged."""
    return credentials.api_key.get_secret_value() == EMULATOR_KEY


def _say(message: str) -> None:
    """A warning in the run's log when there is a run, else in the package's logger."""
    try:
        from prefect import get_run_logger

        get_run_logger().warning(message)
    except Exception:  # no run context: outside a flow or task
        log.warning(message)
