"""Kept for imports of earlier releases: the endpoint resolver lives in `prefect_lipsync.tasks.endpoint`."""

from prefect_lipsync.tasks.endpoint import (
    EMULATOR_KEY,
    OFFLINE_NOTICE,
    Endpoint,
    MissingCredentials,
    load_credentials_block,
    resolve_credentials,
    runware_endpoint,
)

__all__ = [
    "EMULATOR_KEY",
    "OFFLINE_NOTICE",
    "Endpoint",
    "MissingCredentials",
    "load_credentials_block",
    "resolve_credentials",
    "runware_endpoint",
]
