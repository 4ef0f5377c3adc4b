"""What a run made: one LanguageOutput per job, and the run's whole outcome."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Verdict = Literal["pass", "warn", "fail"]
SEVERITY: list[Verdict] = ["pass", "warn", "fail"]


class LanguageOutput(BaseModel):
    """The outcome of one language of a run."""

    language: str
    segments: int = Field(default=0, description="Segments in the request (0 for a whole-track dub).")
    task_uuid: str | None = None
    output_name: str | None = Field(default=None, description="The file name the output is delivered under.")
    output: str | None = Field(default=None, description="The delivered file; None when there is none.")
    extra_outputs: list[str] = Field(
        default_factory=list, description="Further delivered results (numberResults > 1)."
    )
    verdict: Verdict | None = None
    cost_usd: float | None = Field(
        default=None, description="What the service reported it charged; None when nothing was paid."
    )
    estimated_cost_usd: float | None = Field(
        default=None,
        description="What the real service would charge (an estimate), e.g. for a run on the local emulator.",
    )
    report: str | None = Field(default=None, description="The quality report (JSON) next to the output.")
    pictures: list[str] = Field(default_factory=list)
    quarantined_to: str | None = Field(
        default=None, description="Where a failed or flagged output was moved instead of its delivery name."
    )
    held: bool = Field(
        default=False, description="The output waits in quarantine for a person's decision (policy ask)."
    )
    failed_checks: list[str] = Field(
        default_factory=list, description="Each failed check: its name, value and threshold."
    )
    chosen_because: str | None = Field(
        default=None, description="With several variations: why the delivered one was chosen."
    )
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None

    @property
    def summary(self) -> str:
        if self.error:
            return f"error: {self.error}"
        return f"{self.verdict or 'done'}, {self.output or self.quarantined_to}"


class RunOutcome(BaseModel):
    """What one manifest's run made: one entry per language."""

    manifest: str
    name: str
    offline: bool = Field(
        description="True when the run used the local emulator: outputs have no lip movement."
    )
    outputs: list[LanguageOutput]
    estimated_cost_usd: float = Field(description="The planner's estimate before the run.")
    cost_usd: float | None = Field(
        default=None, description="What the service reported it charged; None for a run that paid nothing."
    )

    @property
    def failed(self) -> list[LanguageOutput]:
        return [o for o in self.outputs if o.error or o.verdict == "fail"]
