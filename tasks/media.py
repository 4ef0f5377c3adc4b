"""The probe task: what a media file holds (streams, duration, frame rate), through the probe cache."""

from __future__ import annotations

import anyio
from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.media.probe import DEFAULT_PROBE_TIMEOUT_S, probe
from prefect_lipsync.tasks.dispatch import dispatch_to

_NAME = "probe-media"
_DESCRIPTION = "Probe a media file (path, s3:// or https://) with ffprobe: streams, duration, frame rate."


@task(
    name=_NAME, description=_DESCRIPTION, cache_policy=NO_CACHE
)  # the probe cache knows when a file changed
async def aprobe_media(ref: str, *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> MediaInfo:
    """Probe a media file with ffprobe, through the persistent probe cache (async twin of `probe_media`).

    Args:
        ref: A local path, an `s3://bucket/key` object or an `https://` URL.
        timeout_s: The most the probe may take, in seconds.

    Returns:
        The file's `MediaInfo`: duration, video stream (size, exact frame rate), audio streams.

    Raises:
        MediaError: The file is missing, not media, or the probe timed out (the error names the file).

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import aprobe_media

        @flow
        async def how_long(video: str) -> float:
            return (await aprobe_media(video)).duration
        ```
    """
    return await anyio.to_thread.run_sync(lambda: probe(ref, timeout=timeout_s))


@task(name=_NAME, description=_DESCRIPTION, cache_policy=NO_CACHE)
@dispatch_to(aprobe_media)
def probe_media(ref: str, *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> MediaInfo:
    """Probe a media file with ffprobe, through the persistent probe cache.

    Args:
        ref: A local path, an `s3://bucket/key` object or an `https://` URL.
        timeout_s: The most the probe may take, in seconds.

    Returns:
        The file's `MediaInfo`: duration, video stream (size, exact frame rate), audio streams.

    Raises:
        MediaError: The file is missing, not media, or the probe timed out (the error names the file).

    Example:
        ```python
        from prefect import flow
        from prefect_lipsync.tasks import probe_media

        @flow
        def how_long(video: str) -> float:
            return probe_media(video).duration
        ```
    """
    return probe(ref, timeout=timeout_s)
