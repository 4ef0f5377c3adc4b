"""Single frames at chosen times, as numpy arrays, from one ffmpeg run per file (remembered per process
while the file is unchanged: a batch pictures the same source beside each of its outputs).

Each time is its own input with an input seek (`-ss` before `-i`: ffmpeg decodes from the key
frame before it and drops frames until the time), and a concat filter keeps the frames in order
on one rawvideo pipe. A file whose frame rate varies is sought by its frames' timestamps (a
`FrameClock`): its frame shown at t need not start near a multiple of 1/fps.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg_remembered
from prefect_lipsync.media.frame_clock import FrameClock

Frame = npt.NDArray[np.uint8]


def frame_window(t: float, fps: Fraction, clock: FrameClock | None = None) -> tuple[float, float]:
    """Times around the frame shown at `t` that hold no other frame: halfway to its neighbours."""
    if clock is not None:
        low, high = clock.window(clock.shown_at(Fraction(t)))
        return float(low), float(high)
    k = int(Fraction(t) * fps)
    return float((k - Fraction(1, 2)) / fps), float((k + Fraction(1, 2)) / fps)


def frame_time(t: float, fps: Fraction, clock: FrameClock | None = None) -> float:
    """A seek time that lands on the frame shown at `t` (halfway between it and the frame before)."""
    return max(0.0, frame_window(t, fps, clock)[0])


def sample_frames(
    path: Path,
    times: Sequence[float],
    *,
    size: tuple[int, int],
    fps: Fraction,
    gray: bool = True,
    width: int | None = None,
    clock: FrameClock | None = None,
    timeout: float = 120.0,
) -> list[Frame]:
    """The frames shown at `times` (gray HxW or RGB HxWx3), scaled to `width` if given.

    `size` is the file's (width, height) as shown; `clock` its frame times when its rate varies.
    A time past the last frame yields fewer frames.
    """
    if not times:
        return []
    src_w, src_h = size
    out_w = width or src_w
    out_h = src_h if width is None else max(2, round(src_h * width / src_w / 2) * 2)
    pix_fmt, channels = ("gray", 1) if gray else ("rgb24", 3)
    args: list[str] = ["-v", "error"]
    for t in times:
        args += ["-ss", f"{frame_time(t, fps, clock):.6f}", "-i", str(path)]
    scale = f",scale={out_w}:{out_h}" if (out_w, out_h) != (src_w, src_h) else ""
    chains = [
        f"[{i}:v:0]trim=end_frame=1,setpts=PTS-STARTPTS{scale},format={pix_fmt}[f{i}]"
        for i in range(len(times))
    ]
    inputs = "".join(f"[f{i}]" for i in range(len(times)))
    graph = ";".join([*chains, f"{inputs}concat=n={len(times)}:v=1:a=0[out]"])
    args += [
        "-filter_complex",
        graph,
        "-map",
        "[out]",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        pix_fmt,
        "pipe:1",
    ]
    data = run_ffmpeg_remembered(args, inputs=[path], timeout=timeout, path=path)
    frame_bytes = out_w * out_h * channels
    count = len(data) // frame_bytes
    frames = np.frombuffer(data[: count * frame_bytes], dtype=np.uint8)
    shape = (count, out_h, out_w) if gray else (count, out_h, out_w, channels)
    return list(frames.reshape(shape))
