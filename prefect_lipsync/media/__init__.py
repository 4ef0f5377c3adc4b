"""Media probing and processing with ffmpeg (through ffmpeg-python), every call with a timeout."""

from prefect_lipsync.media.audio_ops import AudioOp, render_audio_op
from prefect_lipsync.media.cache import ProbeCache, default_probe_cache
from prefect_lipsync.media.errors import FFmpegFailed, FFmpegNotFound, FFmpegTimeout, MediaError
from prefect_lipsync.media.hashing import file_sha256
from prefect_lipsync.media.info import AudioStream, MediaInfo, VideoStream
from prefect_lipsync.media.probe import (
    MediaNotFound,
    NotAFile,
    NotMediaFile,
    NoVideoStream,
    ProbeErrors,
    probe,
    probe_many,
    require_video,
)

__all__ = [
    "AudioOp",
    "AudioStream",
    "FFmpegFailed",
    "FFmpegNotFound",
    "FFmpegTimeout",
    "MediaError",
    "MediaInfo",
    "MediaNotFound",
    "NoVideoStream",
    "NotAFile",
    "NotMediaFile",
    "ProbeCache",
    "ProbeErrors",
    "VideoStream",
    "default_probe_cache",
    "file_sha256",
    "probe",
    "probe_many",
    "render_audio_op",
    "require_video",
]
