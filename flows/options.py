"""The options every flow takes, defined once: a flow passes them on whole, so none can be dropped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.blocks.settings import LipsyncSettings

QualityPolicy = Literal["fail", "warn", "ask"]


@dataclass(frozen=True)
class RunOptions:
    """Where to send jobs, with which defaults, and what a failed check does.

    Each flow declares these as its own parameters (so the UI renders them as a form) and turns
    them into one value with `RunOptions.of(locals())`.
    """

    credentials: RunwareCredentials | None = None
    credentials_block: str | None = None
    settings: LipsyncSettings | None = None
    base_url: str | None = None
    allow_emulator: bool = True
    quality_policy: QualityPolicy = "fail"
    approval_timeout_s: int = 3600
    rerun_nonce: str | None = None

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def of(cls, parameters: Mapping[str, Any], *, not_applicable: tuple[str, ...] = ()) -> RunOptions:
        """The options among a flow's parameters (its `locals()`); a flow lacking one is a bug.

        `not_applicable` names the options a flow deliberately does not offer (they keep their
        defaults), so that leaving one out is a decision written down, never an accident.
        """
        wanted = [name for name in cls.names() if name not in not_applicable]
        missing = [name for name in wanted if name not in parameters]
        if missing:
            raise TypeError(f"a flow must take every run option; missing: {', '.join(missing)}")
        return cls(**{name: parameters[name] for name in wanted})

    @staticmethod
    def settings_fields() -> list[str]:
        """The fields of the settings block a flow run on another worker is given (its values, no secret)."""
        from prefect_lipsync.pipeline.settings import RunSettings

        return [*RunSettings.model_fields, "global_concurrency_limit"]

    @property
    def team_settings(self) -> LipsyncSettings:
        return self.settings or LipsyncSettings()
