"""The delivered audio: a dubbed video's dub, where it plays, over a music-and-effects stem.

The lip-sync service returns a video whose audio is the dub (and, between dubbed lines, whatever it
kept of the source's sound, in stereo). `mix_over_stem` remakes that audio in one ffmpeg run, the
picture copied as it is:

    dub    -> muted outside its windows (the segments) -> the dialogue channel(s) of the layout
    stem   -> resampled to the layout (5.1 stays 5.1, a stereo stem is placed front left/right)
    output =  dub + stem, no normalisation (each keeps its level), at the video's layout and rate

The dialogue goes to the front centre when the layout has one (mono: the only channel), else to
front left/right. The gate is sample-exact to a millisecond and costs the same for 3 windows or 3,000
(commands sent to one `volume` filter at each window's edges, not an expression per sample).
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prefect_lipsync.files import atomic_path
from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg, run_process

DEFAULT_MIX_TIMEOUT_S = 600.0
#: AAC/Opus bit rate per channel of the mixed audio.
BITS_PER_CHANNEL = 64_000
_GATE = "volume@dubgate"


@functools.lru_cache(maxsize=1)
def standard_layouts() -> dict[str, tuple[str, ...]]:
    """ffmpeg's standard channel layouts (`ffmpeg -layouts`): name -> its channels, in order."""
    done = run_process(["ffmpeg", "-hide_banner", "-layouts"], timeout=30.0)
    text = done.stdout.decode("utf-8", "replace")
    layouts: dict[str, tuple[str, ...]] = {}
    _, _, table = text.partition("Standard channel layouts:")
    for row in table.splitlines():
        match = re.fullmatch(r"\s*(\S+)\s+([A-Z0-9]+(?:\+[A-Z0-9]+)*)\s*", row)
        if match and match.group(1) != "NAME":
            layouts[match.group(1)] = tuple(match.group(2).split("+"))
    return layouts


def layout_channels(layout: str) -> tuple[str, ...] | None:
    """The channels of a layout given by name (5.1) or decomposition (FL+FR+FC); None when unknown."""
    if "+" in layout:
        return tuple(layout.split("+"))
    return standard_layouts().get(layout)


def dialogue_pan(layout: str, channels: int) -> str:
    """The pan filter placing a stereo dub in `layout`: front centre, else front left/right.

    A dub is dialogue, the same in both channels: (L+R)/2 keeps its level in a single channel.
    """
    names = layout_channels(layout)
    target = layout if names is not None else f"{channels}c"
    if names is not None and "FC" in names:
        return f"pan={target}|FC=0.5*c0+0.5*c1"
    if names is not None and {"FL", "FR"} <= set(names):
        return f"pan={target}|FL=c0|FR=c1"
    if channels == 1:
        return f"pan={target}|c0=0.5*c0+0.5*c1"
    return f"pan={target}|c0=c0|c1=c1"


def merged_windows(windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The windows sorted, without empty ones, touching or overlapping ones joined."""
    out: list[tuple[float, float]] = []
    for start, end in sorted((max(0.0, s), e) for s, e in windows if e > max(0.0, s)):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def gate_commands(windows: Sequence[tuple[float, float]]) -> str:
    """asendcmd commands opening the dub's gate at each window's start and closing it at its end."""
    return "\n".join(
        f"{start:.6f}-{end:.6f} [enter] {_GATE} volume 1, [leave] {_GATE} volume 0;"
        for start, end in merged_windows(windows)
    )


def _escape_path(path: Path) -> str:
    """A path as a filter option value (ffmpeg's filtergraph escaping of \\ ' : , ; [ ])."""
    return re.sub(r"([\\':,;\[\]])", r"\\\\\1", str(path))


def build_mix_args(
    dubbed: Path,
    stem: Path,
    *,
    stem_stream: int | None,
    commands_file: Path,
    layout: str,
    channels: int,
    sample_rate: int,
    output: Path,
    container: str,
) -> list[str]:
    """The ffmpeg arguments of the mix: `dubbed`'s picture copied, its audio remade (reads the size of
    `commands_file`, the gate's commands)."""
    frame = max(1, sample_rate // 1000)  # 1 ms frames: the gate's commands act on frame edges
    target = layout if layout_channels(layout) is not None else f"{channels}c"
    stem_in = f"1:{stem_stream}" if stem_stream is not None else "1:a:0"
    # Without a window the gate stays shut (asendcmd refuses an empty list of commands).
    commands = f"asendcmd=f={_escape_path(commands_file)}," if commands_file.stat().st_size else ""
    graph = ";".join(
        [
            f"[0:a:0]aresample={sample_rate},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"asetnsamples=n={frame}:p=0,{commands}{_GATE}=volume=0,"
            f"{dialogue_pan(layout, channels)}[dub]",
            f"[{stem_in}]aresample={sample_rate}:first_pts=0,"
            f"aformat=sample_fmts=fltp:channel_layouts={target}[stem]",
            "[dub][stem]amix=inputs=2:duration=first:dropout_transition=0:normalize=0,"
            f"aformat=channel_layouts={target}[mix]",
        ]
    )
    rate = sample_rate
    if container == "webm":  # Opus: 48 kHz only; more than two channels need the surround mapping
        codec = ["-c:a", "libopus"] + (["-mapping_family", "1"] if channels > 2 else [])
        rate = 48000
    else:
        codec = ["-c:a", "aac"]
    args = [
        "-y",
        "-i",
        str(dubbed),
        "-i",
        str(stem),
        "-filter_complex",
        graph,
        "-map",
        "0:v:0",
        "-map",
        "[mix]",
        "-c:v",
        "copy",
        *codec,
        "-b:a",
        str(BITS_PER_CHANNEL * channels),
        "-ar",
        str(rate),
        "-map_metadata",
        "0",
    ]
    if container in ("mp4", "mov"):
        args += ["-movflags", "+faststart"]
    return [*args, "-f", container, str(output)]


def mix_over_stem(
    dubbed: str | os.PathLike[str],
    stem: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    windows: Sequence[tuple[float, float]],
    layout: str,
    channels: int,
    sample_rate: int,
    stem_stream: int | None = None,
    timeout: float = DEFAULT_MIX_TIMEOUT_S,
) -> Path:
    """Write `output` (atomically; it may be `dubbed` itself): `dubbed`'s picture, and its dub inside
    `windows` (seconds) over `stem` (its stream `stem_stream`, else its first audio stream), at `layout`
    and `sample_rate`. Raises MediaError (FFmpegFailed, FFmpegTimeout) naming `dubbed`.
    """
    dubbed, stem, target = Path(dubbed), Path(stem), Path(output)
    container = {".mov": "mov", ".webm": "webm"}.get(target.suffix.lower(), "mp4")
    with tempfile.TemporaryDirectory(prefix="lipsync-mix-") as folder, atomic_path(target) as tmp:
        commands = Path(folder) / "gate.cmd"
        commands.write_text(gate_commands(windows) or "", encoding="utf-8")
        args = build_mix_args(
            dubbed,
            stem,
            stem_stream=stem_stream,
            commands_file=commands,
            layout=layout,
            channels=channels,
            sample_rate=sample_rate,
            output=tmp,
            container=container,
        )
        run_ffmpeg(args, timeout=timeout, path=dubbed)
    return target
