"""Media probing and processing with ffmpeg (through ffmpeg-python), every call with a timeout."""

from prefect_lipsync.media.errors import FFmpegFailed, FFmpegNotFound, FFmpegTimeout, MediaError
from prefect_lipsync.media.info import AudioStream, MediaInfo, VideoStream

__all__ = [
    "AudioStream",
    "FFmpegFailed",
    "FFmpegNotFound",
    "FFmpegTimeout",
    "MediaError",
    "MediaInfo",
    "VideoStream",
]
