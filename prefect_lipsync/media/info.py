"""What a probe tells about a media file."""

from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from prefect_lipsync.media.frame_clock import FrameClock


class FrameTimes(BaseModel):
    """When each frame of a stream starts, read from its packets' timestamps (a variable frame rate).

    `pts` are in `time_base` units, sorted, counted from the first frame (so `pts[0]` is 0); `end`
    is where the last frame stops. Kept as integers: exact, and small in the probe cache.
    """

    model_config = ConfigDict(frozen=True)

    time_base: Fraction = Field(description="Seconds per pts unit, an exact fraction (1/15360).")
    pts: list[int] = Field(description="Each frame's start in time_base units, from 0, in display order.")
    end: int = Field(description="The end of the last frame in time_base units.")

    @field_validator("time_base", mode="before")
    @classmethod
    def _parse_fraction(cls, value: object) -> object:
        return Fraction(value) if isinstance(value, str) and value else value

    @field_serializer("time_base")
    def _dump_fraction(self, value: Fraction) -> str:
        return f"{value.numerator}/{value.denominator}"

    def starts(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]


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
    duration: float | None = Field(
        default=None, description="Seconds from the first frame's start to the last frame's end (timestamps)."
    )
    variable_frame_rate: bool = Field(
        default=False, description="Frames do not come at one rate (dropped frames, a rate that changes)."
    )
    frame_times: FrameTimes | None = Field(
        default=None,
        description="Each frame's timestamp, read from the packets when the rate varies (else frame k is at k/fps).",
    )
    rotation: int = Field(
        default=0,
        description="Degrees the display matrix turns the stored picture, as ffprobe reports it (0, 90, 180, 270).",
    )
    display_matrix: list[int] | None = Field(
        default=None, description="The stream's display matrix (9 integers), when it has one."
    )
    display_width: int = Field(
        default=0, description="Width of the picture as players show it (rotation applied)."
    )
    display_height: int = Field(
        default=0, description="Height of the picture as players show it (rotation applied)."
    )

    @field_validator("fps", "avg_fps", mode="before")
    @classmethod
    def _parse_fraction(cls, value: object) -> object:
        if isinstance(value, str) and value:
            return Fraction(value)
        return value

    @field_serializer("fps", "avg_fps")
    def _dump_fraction(self, value: Fraction | None) -> str | None:
        return None if value is None else f"{value.numerator}/{value.denominator}"

    @property
    def shown_size(self) -> tuple[int, int]:
        """(width, height) as people see the picture: the stored size turned by the display matrix."""
        if self.display_width and self.display_height:
            return self.display_width, self.display_height
        return (self.height, self.width) if self.rotation % 180 == 90 else (self.width, self.height)

    def clock(self) -> FrameClock:
        """Frame times of this stream: its timestamps when known, else frame k at k/fps."""
        if self.frame_times is not None and self.frame_times.pts:
            times = self.frame_times
            return FrameClock.from_timestamps(times.starts(), times.end * times.time_base, nominal=self.fps)
        length = Fraction(repr(self.duration)) if self.duration else None
        return FrameClock.constant(self.fps, self.frame_count, length)


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
    timecode: str | None = Field(
        default=None,
        description="The start timecode (SMPTE) of a tmcd track or the container's timecode tag, if any.",
    )
    size_bytes: int | None = None
    format_name: str = ""
    video: VideoStream | None = None
    audio: list[AudioStream] = Field(default_factory=list)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)
