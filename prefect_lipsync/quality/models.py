"""The report of the quality checks, and the one set of thresholds they use."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["pass", "warn", "fail"]

_SEVERITY: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}


def worst(statuses: list[Status]) -> Status:
    """The most severe of `statuses` (pass when there are none)."""
    result: Status = "pass"
    for status in statuses:
        if _SEVERITY[status] > _SEVERITY[result]:
            result = status
    return result


class TimeRange(BaseModel):
    """A stretch of the file, in seconds; `end` is None when it runs to the end of the file."""

    model_config = ConfigDict(frozen=True)

    start: float = Field(description="Start in seconds.")
    end: float | None = Field(
        default=None, description="End in seconds, or None for 'to the end of the file'."
    )

    def end_or(self, default: float) -> float:
        return default if self.end is None else self.end

    def overlap(self, start: float, end: float, *, file_end: float) -> float:
        """Seconds this range shares with [start, end]."""
        return max(0.0, min(self.end_or(file_end), end) - max(self.start, start))

    def __str__(self) -> str:
        if self.end == self.start:
            return f"{self.start:.2f} s"
        return f"{self.start:.2f}-{'end' if self.end is None else f'{self.end:.2f}'} s"


class CheckResult(BaseModel):
    """The outcome of one check."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Stable identifier of the check, e.g. 'black_frames'.")
    status: Status = Field(description="pass, warn or fail.")
    value: float | int | bool | str | None = Field(default=None, description="What was measured.")
    threshold: str | None = Field(default=None, description="The rule the value was held to, readable.")
    message: str = Field(description="One sentence saying what was found.")
    at: list[TimeRange] = Field(default_factory=list, description="Where in the file the finding is.")


class LipsyncSegment(BaseModel):
    """The lip-sync measure of one segment, with the curves its picture draws (one value per frame)."""

    label: str = Field(description="Which segment, readable.")
    start: float = Field(description="Start of the measured window, seconds.")
    end: float = Field(description="End of the measured window, seconds.")
    lag_ms: float = Field(description="How late the lips move after the sound (negative: early).")
    confidence: float = Field(description="How far the correlation's peak stands above its median.")
    status: Status = Field(description="This segment's verdict.")
    fps: float = Field(description="Frames per second of the curves.")
    motion: list[float] = Field(default_factory=list, description="Mouth motion per frame, 0..1.")
    envelope: list[float] = Field(default_factory=list, description="Audio loudness change per frame, 0..1.")


class QualityReport(BaseModel):
    """All checks of one file; the verdict is the worst status among them."""

    verdict: Status = Field(description="The worst status of all checks.")
    checks: list[CheckResult] = Field(default_factory=list)
    output: str = Field(description="The file that was checked.")
    source: str | None = Field(default=None, description="The source video it was compared with.")
    notes: list[str] = Field(default_factory=list, description="Checks that were not run, and why.")
    quarantined_to: str | None = Field(default=None, description="Where a flagged output was moved.")
    face_source: str | None = Field(
        default=None, description="Where the face box of the region checks came from (plan or finder)."
    )
    face_box: tuple[int, int, int, int] | None = Field(
        default=None, description="The face box the region checks used (x1, y1, x2, y2)."
    )
    mouth_box: tuple[int, int, int, int] | None = Field(
        default=None, description="The mouth box of mouth_changed and lipsync_offset (x1, y1, x2, y2)."
    )
    lipsync: list[LipsyncSegment] = Field(
        default_factory=list, description="The lip-sync measure per segment (check lipsync_offset)."
    )

    def __repr__(self) -> str:
        # Short: a report lands in log lines (a failed check's task state); its checks are in the artifact.
        failing = sum(1 for c in self.checks if c.status == "fail")
        return f"QualityReport(verdict={self.verdict!r}, output={self.output!r}, failing_checks={failing})"

    @classmethod
    def from_checks(
        cls, checks: list[CheckResult], *, output: str, source: str | None, notes: list[str] | None = None
    ) -> QualityReport:
        return cls(
            verdict=worst([c.status for c in checks]),
            checks=checks,
            output=output,
            source=source,
            notes=list(notes or []),
        )

    def check(self, name: str) -> CheckResult | None:
        """The check called `name`, if it ran."""
        return next((c for c in self.checks if c.name == name), None)

    def not_passed(self) -> set[str]:
        """Names of the checks that warned or failed."""
        return {c.name for c in self.checks if c.status != "pass"}


class QualityThresholds(BaseModel):
    """Every threshold the checks use, with defaults to start from (tune them on your own material)."""

    model_config = ConfigDict(frozen=True)

    duration_tolerance_s: float = Field(
        default=0.1, ge=0, description="Output length may differ from the source by max(this, N frames)."
    )
    duration_tolerance_frames: int = Field(
        default=2, ge=0, description="Output length may differ from the source by max(N frames, the seconds)."
    )
    silent_max_volume_db: float = Field(
        default=-50.0,
        description="A file or segment whose max_volume (volumedetect) is at or below this is silent.",
    )
    silence_noise_db: float = Field(default=-50.0, description="silencedetect noise floor in dB.")
    silence_min_s: float = Field(
        default=0.5, gt=0, description="A silence longer than this inside a planned segment fails."
    )
    loudness_target_lufs: float = Field(default=-23.0, description="Integrated loudness target (EBU R128).")
    loudness_tolerance_lu: float = Field(
        default=2.0, ge=0, description="Integrated loudness further than this from the target warns."
    )
    true_peak_max_dbtp: float = Field(default=-1.0, description="A true peak above this warns.")
    black_min_s: float = Field(default=0.1, gt=0, description="blackdetect minimum duration (d).")
    black_pixel_threshold: float = Field(
        default=0.10, ge=0, le=1, description="blackdetect pixel threshold (pix_th)."
    )
    freeze_noise_db: float = Field(default=-60.0, description="freezedetect noise tolerance (n) in dB.")
    freeze_min_s: float = Field(default=0.5, gt=0, description="freezedetect minimum duration (d).")
    source_overlap_s: float = Field(
        default=0.1,
        ge=0,
        description="A black/frozen stretch of the output that overlaps the source's own by less than this "
        "is new (fails).",
    )
    av_offset_max_frames: float = Field(
        default=1.0,
        gt=0,
        description="The output's audio may lead or lag the submitted audio by this many frames.",
    )
    av_search_s: float = Field(
        default=0.5, gt=0, description="How far either way the A/V offset is searched."
    )
    av_min_correlation: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Below this normalised correlation a segment's offset is not measurable and is skipped.",
    )
    outside_face_min_ssim: float = Field(
        default=0.97,
        ge=0,
        le=1,
        description="SSIM outside the face box must be at least this (unchanged picture).",
    )
    mouth_changed_max_ssim: float = Field(
        default=0.90,
        ge=0,
        le=1,
        description="Mean SSIM of the mouth crop inside segments must be below this.",
    )
    lipsync_search_ms: float = Field(
        default=400.0, gt=0, description="How far either way the lips' lag behind the audio is searched."
    )
    lipsync_max_offset_ms: float = Field(
        default=80.0, gt=0, description="Lips within this many ms of the audio pass."
    )
    lipsync_min_confidence: float = Field(
        default=0.3,
        ge=0,
        description="Below this confidence no lip movement that follows the audio was found (warns).",
    )
    ssim_samples_max: int = Field(default=8, ge=1, description="Most frames sampled for the SSIM checks.")
    face_samples_per_segment: int = Field(
        default=3, ge=1, description="Frames per segment searched for a face in pre-flight."
    )
    require_content_check: bool = Field(
        default=False, description="Warn when the service was not asked to check content (safety)."
    )
    preflight_full_decode: bool = Field(
        default=False,
        description="Pre-flight decodes every frame of the source (else key frames only, plus all audio).",
    )
