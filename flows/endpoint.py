"""Which Runware endpoint a run talks to: a credentials block, the environment, or the local emulator."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import SecretStr

from prefect_lipsync.blocks.credentials import RunwareCredentials

OFFLINE_NOTICE = (
    "No Runware API key is configured (no credentials block, no RUNWARE_API_KEY): running on the LOCAL "
    "EMULATOR. Outputs are dub previews WITHOUT lip movement; nothing is sent to Runware and nothing is paid."
)
EMULATOR_KEY = "local-emulator"  # the emulator accepts any non-empty key


class MissingCredentials(RuntimeError):
    """No key is configured and the run may not fall back to the emulator."""


@dataclass(frozen=True)
class Endpoint:
    """Credentials for the run and whether they point at the local emulator."""

    credentials: RunwareCredentials
    offline: bool

    @property
    def base_url(self) -> str:
        return self.credentials.base_url


def load_credentials(credentials: RunwareCredentials | str | None) -> RunwareCredentials | None:
    """A block, a block name, or nothing."""
    if isinstance(credentials, str) and credentials:
        loaded = RunwareCredentials.load(credentials)
        assert isinstance(loaded, RunwareCredentials)
        return loaded
    if isinstance(credentials, RunwareCredentials):
        return credentials
    return None


@contextlib.contextmanager
def runware_endpoint(
    credentials: RunwareCredentials | str | None = None,
    base_url: str | None = None,
    *,
    allow_emulator: bool = True,
) -> Iterator[Endpoint]:
    """Resolve the endpoint of a run; with no key at all, start the emulator for the run's duration.

    Order: a credentials block (or its name), at its own endpoint unless `base_url` is given;
    `RUNWARE_API_KEY` from the environment; a base URL (argument or `RUNWARE_BASE_URL`) alone, which
    points at an emulator started elsewhere; else an in-process emulator, if `allow_emulator`.
    """
    block = load_credentials(credentials)
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
