"""What a probe tells about a media file."""

from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator


class VideoStream(BaseModel):
    """The first video stream of a file."""

    model_config = ConfigDict(frozen=True)

    index: int
    codec: str
    width: int
    height: int
    fps: Fraction = Field(description="Frame rate as an exact fraction (r_frame_rate), e.g. 30000/1001.")
    avg_fps: Fraction | None = Field(default=None, description="avg_frame_rate as an exact fraction.")
    frame_count: int | None = Field(default=None, description="Number of frames, when known.")
    duration: float | None = None
    variable_frame_rate: bool = False

    @field_validator("fps", "avg_fps", mode="before")
    @classmethod
    def _parse_fraction(cls, value: object) -> object:
        if isinstance(value, str) and value:
            return Fraction(value)
        return value

    @field_serializer("fps", "avg_fps")
    def _dump_fraction(self, value: Fraction | None) -> str | None:
        return None if value is None else f"{value.numerator}/{value.denominator}"


#: ffmpeg's default channel layout for a channel count (av_channel_layout_default).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def default_layout(channels: int) -> str:
    """The layout ffmpeg assumes for `channels` channels ("6 channels" past 8)."""
    return _DEFAULT_LAYOUTS.get(channels, f"{channels} channels")


class AudioStream(BaseModel):
    """One audio stream of a file."""

    model_config = ConfigDict(frozen=True)

    index: int
    codec: str
    sample_rate: int
    channels: int
    channel_layout: str | None = Field(
        default=None, description="ffprobe's channel layout (stereo, 5.1, 5.1(side), ...), when known."
    )
    duration: float | None = None

    @property
    def layout(self) -> str:
        """The channel layout by name: ffprobe's, else ffmpeg's default for the channel count."""
        return self.channel_layout or default_layout(self.channels)


class MediaInfo(BaseModel):
    """Durations and streams of one media file, as ffprobe reports them."""

    model_config = ConfigDict(frozen=True)

    path: str
    duration: float = Field(description="Container duration in seconds.")
    size_bytes: int | None = None
    format_name: str = ""
    video: VideoStream | None = None
    audio: list[AudioStream] = Field(default_factory=list)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)
