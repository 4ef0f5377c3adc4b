"""What the planner hands on: one sync-3 request per language, with its warnings and audio work."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from prefect_lipsync.media.audio_ops import AudioOp
from prefect_lipsync.runware.models import Sync3Request
from prefect_lipsync.runware.uploads import local_path

#: USD per output second, an ESTIMATE only: Runware publishes no price for sync-3 yet.
DEFAULT_PRICE_PER_SECOND = 0.13


class DroppedLine(BaseModel):
    """A script line that is not in the plan, and why."""

    line_id: str
    reason: str


class PlannedAudioOp(BaseModel):
    """Audio to render before upload; the request already names its output as a file:// URI."""

    model_config = ConfigDict(frozen=True)

    op: AudioOp = Field(description="Crop and tempo of a source file.")
    content_key: str = Field(description="The op's content key (source hash and parameters).")
    output_path: str = Field(description="Where render_audio_op(op, dirname(output_path)) writes the WAV.")
    output_uri: str = Field(description="The file:// URI of output_path, as the request's segment names it.")
    line_ids: list[str] = Field(description="The script lines this audio carries.")


class FinalMix(BaseModel):
    """The delivered video's audio: the service's dub, where it plays, over the music-and-effects stem."""

    model_config = ConfigDict(frozen=True)

    stem: str = Field(
        description="The stem's file, resolved: a local path or URL (the source video for a stream of it)."
    )
    stream: int | None = Field(
        default=None,
        description="The stem's stream index in `stem` (ffprobe's Stream #0:N); None: its first audio stream.",
    )
    layout: str = Field(description="The delivered audio's channel layout, the video's: stereo, 5.1, ...")
    channels: int = Field(gt=0, description="Channels of that layout.")
    sample_rate: int = Field(gt=0, description="The delivered audio's sample rate (the video's).")
    dub_windows: list[tuple[float, float]] = Field(
        description="Where the dub plays (seconds of the video): each segment, or the whole video for a "
        "dub track or TTS. Outside them, the stem plays alone."
    )


class PlannedJob(BaseModel):
    """One language's sync-3 request and what the planner had to do to make it."""

    language: str
    kind: str = Field(description="lines, subtitles, audio or speech.")
    request: Sync3Request
    warnings: list[str] = Field(default_factory=list)
    dropped_lines: list[DroppedLine] = Field(default_factory=list)
    audio_ops: list[PlannedAudioOp] = Field(default_factory=list)
    segment_lines: list[list[str]] = Field(
        default_factory=list, description="The script line ids of each segment, in segment order."
    )
    output_name: str = Field(description="File name for this language's output video.")
    run_name: str | None = Field(
        default=None, description="The name of the manifest's run: its outputs' folder and artifact keys."
    )
    video_duration: float = Field(description="Seconds of output video (what is billed).")
    face_box: tuple[int, int, int, int] | None = Field(
        default=None,
        description="The face box [x1, y1, x2, y2] the quality checks use: the job's speaker's box, else the "
        "manifest's only speaker box, else None.",
    )
    final_mix: FinalMix | None = Field(
        default=None,
        description="With a music_and_effects stem: how the delivered audio is mixed after the checks.",
    )

    @property
    def source(self) -> str:
        """The source video: a local path, or the `s3://` / `https://` reference as planned."""
        video = str(self.request.to_wire().get("inputs", {}).get("video", ""))
        return str(local_path(video)) if video.startswith("file://") else video

    def summary(self) -> dict[str, Any]:
        """The JSON shape `prefect-lipsync plan --json` prints for one job."""
        return {
            "language": self.language,
            "kind": self.kind,
            "request": self.request.to_wire(),
            "warnings": list(self.warnings),
            "dropped_lines": [d.model_dump() for d in self.dropped_lines],
            "audio_ops": [op.model_dump(mode="json") for op in self.audio_ops],
            "segment_lines": self.segment_lines,
            "output_name": self.output_name,
            "video_duration": self.video_duration,
            "face_box": list(self.face_box) if self.face_box is not None else None,
            "final_mix": self.final_mix.model_dump(mode="json") if self.final_mix is not None else None,
        }


class Plan(BaseModel):
    """Every language's job and an ESTIMATE of what they cost (price per output second x seconds)."""

    jobs: list[PlannedJob]
    estimated_seconds: float = Field(
        description="Output seconds billed: video duration x number_results, summed."
    )
    estimated_cost_usd: float = Field(description="estimated_seconds x price_per_second: an estimate only.")
    price_per_second: float = Field(
        default=DEFAULT_PRICE_PER_SECOND, description="USD per output second used."
    )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "jobs": [job.summary() for job in self.jobs],
            "estimated_seconds": self.estimated_seconds,
            "estimated_cost_usd": self.estimated_cost_usd,
            "price_per_second": self.price_per_second,
        }
