"""The credentials block: the Runware API key and where to reach the service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    from prefect_lipsync.runware.client import RunwareClient

DEFAULT_BASE_URL = "https://api.runware.ai/v1"


class RunwareCredentials(CredentialsBlock):
    """Credentials and endpoint for the Runware API, which serves sync.'s sync-3 lip-sync model.

    The API key is kept in a `SecretStr`: it is never logged, shown in the UI, or put in a cache key.
    `get_client()` hands out a fresh async client, to be used as a context manager.

    Examples:
        Load saved credentials and run a job:
        ```python
        from prefect_lipsync.blocks import RunwareCredentials

        credentials = RunwareCredentials.load("BLOCK_NAME")
        async with credentials.get_client() as client:
            results = await client.lipsync_many([request])
        ```
    """

    _block_type_name = "Runware Credentials"
    _block_type_slug = "runware-credentials"  # the server-side key: never rename once released
    _logo_url = None  # set once the project hosts its logo (prefect_lipsync/assets/logo.png)
    _documentation_url = "https://runware.ai/docs/models/sync-3"  # type: ignore[assignment]

    api_key: SecretStr = Field(
        default=...,
        title="API Key",
        description="A Runware API key (Dashboard > API Keys); sent as a Bearer token.",
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        title="Base URL",
        description="The Runware REST endpoint; point it at a local emulator for offline runs.",
    )
    request_timeout_s: float = Field(
        default=60.0,
        gt=0,
        title="Request timeout (s)",
        description="Timeout of one HTTP request to the service, in seconds.",
    )
    poll_interval_max_s: float = Field(
        default=10.0,
        gt=0,
        title="Longest poll interval (s)",
        description="The longest wait between two status polls, in seconds.",
    )
    job_timeout_s: float | None = Field(
        default=None,
        gt=0,
        title="Job timeout (s)",
        description=(
            "How long one lip-sync job may take from submit to result, in seconds; empty: the run's "
            "settings decide (LipsyncSettings.job_timeout_s, one hour by default)."
        ),
    )

    def get_client(self, *args: Any, **kwargs: Any) -> RunwareClient:
        """A new `RunwareClient` for these credentials; use it as `async with`.

        Keyword arguments are passed on to `RunwareClient` and override the block's values.
        """
        from prefect_lipsync.runware.client import RunwareClient
        from prefect_lipsync.runware.waiting import PollPolicy

        options: dict[str, Any] = {
            "api_key": self.api_key,
            "base_url": self.base_url,
            "timeout": self.request_timeout_s,
            "poll": PollPolicy(max_interval=self.poll_interval_max_s),
        }
        if self.job_timeout_s is not None:
            options["job_timeout"] = self.job_timeout_s
        options.update(kwargs)
        return RunwareClient(*args, **options)
