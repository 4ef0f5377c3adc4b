"""Synthetic media made with ffmpeg and espeak-ng: test fixtures and the offline demo.

Nothing here downloads anything: a "talking card" is a drawn face with a mouth box that opens
and closes, over a lavfi test pattern, so every pixel outside the mouth is predictable.

`PREFECT_LIPSYNC_SYNTH_CACHE=DIR` keeps each file made here in DIR by the command that made it and gives
a copy for the same command again (`media.output_cache`): the test suite makes the same few cards and
tones in hundreds of tests. Off by default.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from prefect_lipsync.files import atomic_path
from prefect_lipsync.media.errors import FFmpegFailed, FFmpegNotFound, FFmpegTimeout
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.media.mix import layout_channels
from prefect_lipsync.media.output_cache import OutputCache

SYNTH_CACHE = OutputCache("PREFECT_LIPSYNC_SYNTH_CACHE", share_files=False)  # copies: tests edit their media

#: Where the drawn mouth sits on a card of the default size (x1, y1, x2, y2), for checks.
DEFAULT_SIZE = (640, 360)


def face_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The drawn face of a talking card of this size (x1, y1, x2, y2)."""
    return (width * 3 // 8, height // 6, width * 5 // 8, height * 5 // 6)


def mouth_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The drawn mouth of a talking card of this size (x1, y1, x2, y2)."""
    return (width * 7 // 16, height * 7 // 12, width * 9 // 16, height * 2 // 3)


def _ffmpeg_into(
    tmp: Path, args: Sequence[str], *, out: Path, timeout: float, inputs: Sequence[Path] = ()
) -> None:
    """`ffmpeg <args> <tmp>`, or the file that command made before (PREFECT_LIPSYNC_SYNTH_CACHE)."""
    argv = [*args, str(tmp)]
    SYNTH_CACHE.make(argv, output=tmp, inputs=inputs, run=lambda: run_ffmpeg(argv, timeout=timeout, path=out))


def make_talking_card(
    path: str | Path,
    *,
    duration: float = 5.0,
    fps: str | Fraction = "25",
    size: tuple[int, int] = DEFAULT_SIZE,
    audio: bool = True,
    tone_hz: int = 220,
    sample_rate: int = 48000,
    vcodec: str = "libx264",
    timeout: float = 120.0,
) -> Path:
    """Write a video of a drawn face whose mouth opens and closes, with a sine tone track."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    fx1, fy1, fx2, fy2 = face_box(w, h)
    mx1, my1, mx2, my2 = mouth_box(w, h)
    eye_w, eye_h = max(2, (fx2 - fx1) // 8), max(2, (fy2 - fy1) // 10)
    rate = str(fps)
    draw = ",".join(
        [
            f"drawbox=x={fx1}:y={fy1}:w={fx2 - fx1}:h={fy2 - fy1}:color=0xE0B090:t=fill",
            f"drawbox=x={fx1 + (fx2 - fx1) // 4}:y={fy1 + (fy2 - fy1) // 4}:w={eye_w}:h={eye_h}:color=black:t=fill",
            f"drawbox=x={fx2 - (fx2 - fx1) // 4 - eye_w}:y={fy1 + (fy2 - fy1) // 4}:w={eye_w}:h={eye_h}"
            ":color=black:t=fill",
            f"drawbox=x={mx1}:y={my1}:w={mx2 - mx1}:h={my2 - my1}:color=0x802020:t=fill"
            ":enable='lt(mod(t,0.4),0.2)'",
        ]
    )
    args = ["-y", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={rate}:duration={duration}"]
    if audio:
        args += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={tone_hz}:sample_rate={sample_rate}:duration={duration}",
        ]
    args += ["-vf", draw, "-c:v", vcodec, "-pix_fmt", "yuv420p"]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k", "-shortest"]
    with atomic_path(out) as tmp:
        _ffmpeg_into(tmp, args, out=out, timeout=timeout)
    return out


def make_master(
    path: str | Path,
    *,
    audio: Sequence[tuple[int, str]],
    duration: float = 3.0,
    fps: str | Fraction = "25",
    size: tuple[int, int] = (320, 180),
    timeout: float = 120.0,
) -> Path:
    """A talking card with one audio stream per (tone Hz, channel layout), the tone in every channel:
    a studio master's full mix (the original dialogue) and its music-and-effects stem, for instance."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lipsync-master-") as folder:
        picture = make_talking_card(
            Path(folder) / "picture.mp4", duration=duration, fps=fps, size=size, audio=False, timeout=timeout
        )
        args = ["-y", "-i", str(picture)]
        chains = []
        for i, (hz, layout) in enumerate(audio):
            names = layout_channels(layout)
            if names is None:
                raise ValueError(f"unknown channel layout {layout!r}")
            args += ["-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=48000:duration={duration}"]
            spread = "|".join(f"c{k}=c0" for k in range(len(names)))
            chains.append(f"[{i + 1}:a]pan={layout}|{spread}[a{i}]")
        maps = ["-map", "0:v"] + [a for i in range(len(audio)) for a in ("-map", f"[a{i}]")]
        with atomic_path(out) as tmp:
            _ffmpeg_into(
                tmp,
                [*args, "-filter_complex", ";".join(chains), *maps, "-c:v", "copy", "-c:a", "aac"],
                out=out,
                timeout=timeout,
                inputs=[picture],
            )
    return out


def make_tone(
    path: str | Path,
    *,
    duration: float,
    frequency: int = 440,
    sample_rate: int = 48000,
    timeout: float = 60.0,
) -> Path:
    """Write a sine tone (codec from the file extension: .wav PCM, .m4a AAC, .mp3, ...)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        _ffmpeg_into(
            tmp,
            [
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={frequency}:sample_rate={sample_rate}:duration={duration}",
            ],
            out=out,
            timeout=timeout,
        )
    return out


def make_silence(
    path: str | Path, *, duration: float, sample_rate: int = 48000, timeout: float = 60.0
) -> Path:
    """Write digital silence."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        _ffmpeg_into(
            tmp,
            ["-y", "-f", "lavfi", "-i", f"anullsrc=r={sample_rate}:cl=mono", "-t", str(duration)],
            out=out,
            timeout=timeout,
        )
    return out


def speak(
    text: str, path: str | Path, *, voice: str = "en", speed_wpm: int = 160, timeout: float = 60.0
) -> Path:
    """Speak `text` into a WAV file with espeak-ng (a local TTS; no network)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise FFmpegNotFound(out, "espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    with atomic_path(out) as tmp:
        argv = ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(tmp), text]
        SYNTH_CACHE.make(
            argv, output=tmp, run=lambda: _run_espeak([binary, *argv[1:]], out=out, timeout=timeout)
        )
    return out


def _run_espeak(argv: list[str], *, out: Path, timeout: float) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FFmpegTimeout(out, f"espeak-ng did not finish within {timeout:g} s") from exc
    if done.returncode != 0:
        raise FFmpegFailed(out, "espeak-ng failed", done.stderr.decode("utf-8", "replace")[-500:])


# ---- media as localization teams receive it: phone clips, screen recordings, broadcast masters ----


def _transform(source: Path, out: Path, args: list[str], timeout: float) -> Path:
    """ffmpeg `source` -> `out` with `args` between them, atomically."""
    with atomic_path(out) as tmp:
        _ffmpeg_into(tmp, ["-y", "-i", str(source), *args], out=out, timeout=timeout, inputs=[source])
    return out


def make_dropped_frames_clip(
    path: str | Path,
    *,
    duration: float = 6.0,
    fps: str = "30",
    size: tuple[int, int] = (320, 180),
    every: int = 20,
    dropped: int = 3,
    timeout: float = 120.0,
) -> Path:
    """A phone-style clip: a talking card at a nominal `fps` missing `dropped` of every `every` frames
    (from the fourth on: the first and last frames stay).

    The frames left keep their timestamps (a variable frame rate): 6 s at 30 fps holds 153 frames,
    which frame count / nominal rate would take for 5.1 s.
    """
    out = Path(path)
    card = make_talking_card(out.with_name(f".card-{out.name}"), duration=duration, fps=fps, size=size)
    try:
        keep = f"select='not(between(mod(n\\,{every})\\,3\\,{2 + dropped}))'"  # frames 3.. of each `every`
        return _transform(
            card,
            out,
            ["-vf", keep, "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy"],
            timeout,
        )
    finally:
        card.unlink(missing_ok=True)


def make_rate_change_clip(
    path: str | Path,
    *,
    first: tuple[str, float] = ("24", 5.0),
    then: tuple[str, float] = ("30", 1.0),
    size: tuple[int, int] = (320, 180),
    tone_hz: int = 180,
    timeout: float = 120.0,
) -> Path:
    """A screen-recording-style clip: a talking card at one rate for a while, then at another.

    With 5 s at 24 fps first, ffprobe guesses 24 fps for the whole (r_frame_rate), so frame count /
    rate puts the end past the real one, and decoding to the null muxer prints non-monotonic DTS
    notices for the 30 fps part although the file decodes cleanly.
    """
    out = Path(path)
    parts = [out.with_name(f".part{i}-{out.name}") for i in (1, 2)]
    try:
        for part, (rate, seconds) in zip(parts, (first, then), strict=True):
            make_talking_card(part, duration=seconds, fps=rate, size=size, audio=False, timeout=timeout)
        total = first[1] + then[1]
        with atomic_path(out) as tmp:
            args = ["-y", "-i", str(parts[0]), "-i", str(parts[1])]
            args += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000:duration={total}"]
            args += ["-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "2:a"]
            args += ["-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]
            _ffmpeg_into(tmp, args, out=out, timeout=timeout, inputs=parts)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return out


#: How to store an upright picture so that a display matrix of this many degrees shows it upright.
_STORED_FOR_ROTATION = {90: "transpose=1", 180: "hflip,vflip", 270: "transpose=2"}


def make_rotated_clip(
    path: str | Path,
    *,
    shown: tuple[int, int] = (180, 320),
    rotation: int = 90,
    duration: float = 3.0,
    fps: str = "25",
    timeout: float = 120.0,
) -> Path:
    """A phone video: a talking card people see upright at `shown` (width, height), stored turned
    (1920x1080 for a 1080x1920 picture) with a display matrix of `rotation` degrees that turns it back.

    The card's face is at `face_box(*shown)` on the picture as shown.
    """
    if rotation not in _STORED_FOR_ROTATION:
        raise ValueError(f"rotation must be one of {sorted(_STORED_FOR_ROTATION)}, got {rotation}")
    out = Path(path)
    upright = make_talking_card(out.with_name(f".upright-{out.name}"), duration=duration, fps=fps, size=shown)
    stored = out.with_name(f".stored-{out.name}")
    try:
        turn = [
            "-vf",
            _STORED_FOR_ROTATION[rotation],
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "copy",
        ]
        _transform(upright, stored, turn, timeout)
        # ffmpeg 5.1 writes the matrix from the `rotate` tag when it copies the stream (not when encoding).
        return _transform(stored, out, ["-c", "copy", "-metadata:s:v:0", f"rotate={rotation}"], timeout)
    finally:
        upright.unlink(missing_ok=True)
        stored.unlink(missing_ok=True)


def make_timecoded_clip(
    path: str | Path,
    *,
    timecode: str = "01:00:00:00",
    duration: float = 3.0,
    fps: str = "25",
    size: tuple[int, int] = (320, 180),
    timeout: float = 120.0,
) -> Path:
    """A broadcast-master-style clip whose timecode starts at `timecode` (a tmcd track in .mov/.mp4,
    a TIMECODE tag in .mkv)."""
    out = Path(path)
    card = make_talking_card(out.with_name(f".card-{out.name}"), duration=duration, fps=fps, size=size)
    try:
        return _transform(card, out, ["-c", "copy", "-timecode", timecode], timeout)
    finally:
        card.unlink(missing_ok=True)
