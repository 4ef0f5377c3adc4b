"""One decode of a file through every analysis filter, and the one parser of what they print.

A single ffmpeg run decodes the file once: the video goes through blackdetect and freezedetect,
the audio through volumedetect, silencedetect and ebur128, and (optionally) a 16 kHz mono copy of
the audio comes back on stdout for the A/V offset, chosen frames are kept for the SSIM checks and
a small gray crop of the mouth of every frame for the lip-sync check. Decode errors are the lines ffmpeg tags
`[error]` or worse (`-loglevel level+info`), so no separate `-v error` pass is needed; the muxer's
complaints about timestamps are not decode errors and are left out (see `_MUXER_NOTICE`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg
from prefect_lipsync.media.frame_clock import FrameClock
from prefect_lipsync.quality.frames import Frame, frame_window
from prefect_lipsync.quality.models import QualityThresholds, TimeRange

PCM_RATE = 16000
_ERROR_LEVELS = ("[error]", "[fatal]", "[panic]")
# What the (null) muxer prints, at level error, when two frames of a variable-rate stream fall on
# one tick of the output's time base: "Application provided invalid, non monotonically increasing
# dts to muxer". The file decoded cleanly; only the analysis pass's own output complains.
_MUXER_NOTICE = re.compile(r"non[ -]?monotonous|non monotonically increasing dts", re.IGNORECASE)
_NUMBER = r"(-?(?:\d+(?:\.\d*)?|\.\d+)|-?inf|nan)"


@dataclass
class Findings:
    """What the analysis filters reported about one file."""

    black: list[TimeRange] = field(default_factory=list)
    freeze: list[TimeRange] = field(default_factory=list)
    silence: list[TimeRange] = field(default_factory=list)
    max_volume_db: float | None = None
    mean_volume_db: float | None = None
    integrated_lufs: float | None = None
    true_peak_dbtp: float | None = None
    errors: list[str] = field(default_factory=list)
    decoded_until: float | None = None
    pcm16k: npt.NDArray[np.float32] | None = None
    frames: list[Frame] = field(default_factory=list)
    reference_frames: list[Frame] = field(default_factory=list)
    mouth_crops: npt.NDArray[np.uint8] | None = None  # frames x height x width, every frame


def _float(text: str) -> float:
    return float(text)


def _pairs(starts: list[float], ends: list[float]) -> list[TimeRange]:
    """Pair start/end reports in order; a start with no end runs to the end of the file."""
    ranges = []
    for i, start in enumerate(starts):
        ranges.append(TimeRange(start=start, end=ends[i] if i < len(ends) else None))
    return ranges


def _clock(text: str) -> float:
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def parse_filter_log(stderr: str) -> Findings:
    """Read every filter's report (and the decode errors) from ffmpeg's stderr (`-loglevel level+info`)."""
    found = Findings()
    black = re.findall(rf"black_start:{_NUMBER}\s+black_end:{_NUMBER}", stderr)
    found.black = [TimeRange(start=_float(a), end=_float(b)) for a, b in black]
    found.freeze = _pairs(
        [_float(v) for v in re.findall(rf"freeze_start: {_NUMBER}", stderr)],
        [_float(v) for v in re.findall(rf"freeze_end: {_NUMBER}", stderr)],
    )
    found.silence = _pairs(
        [_float(v) for v in re.findall(rf"silence_start: {_NUMBER}", stderr)],
        [_float(v) for v in re.findall(rf"silence_end: {_NUMBER}", stderr)],
    )
    # ffmpeg may build the graph twice (once before the first frame); the last report is the real one.
    if volumes := re.findall(rf"max_volume: {_NUMBER} dB", stderr):
        found.max_volume_db = _float(volumes[-1])
    if volumes := re.findall(rf"mean_volume: {_NUMBER} dB", stderr):
        found.mean_volume_db = _float(volumes[-1])
    summary = stderr.rsplit("Summary:", 1)[1] if "Summary:" in stderr else ""
    if match := re.search(rf"I:\s+{_NUMBER} LUFS", summary):
        found.integrated_lufs = _float(match.group(1))
    if match := re.search(rf"Peak:\s+{_NUMBER} dBFS", summary):
        found.true_peak_dbtp = _float(match.group(1))
    clocks = re.findall(r"time=\s*(\d+:\d+:\d+(?:\.\d+)?)", stderr)
    if clocks:
        found.decoded_until = _clock(clocks[-1])
    for line in stderr.splitlines():
        if any(level in line for level in _ERROR_LEVELS) and not _MUXER_NOTICE.search(line):
            found.errors.append(line.strip())
    return found


@dataclass(frozen=True)
class FrameGrab:
    """Gray frames to keep from the analysis pass, at `times`, from the file (and from `reference`).

    A reference (the source) is decoded in the same run, so the checked file is decoded once and no
    seek replays a group of pictures. Without one, the reference frames come from elsewhere (a
    shared `SourceAnalysis`).
    """

    times: tuple[float, ...]
    fps: Fraction
    size: tuple[int, int]
    reference: Path | None
    folder: Path
    clock: FrameClock | None = None  # the file's frame times when its rate varies
    reference_clock: FrameClock | None = None  # the reference's

    def select(self, clock: FrameClock | None = None) -> str:
        # One frame per time: the one shown at `t` (a window from halfway to the frame before it to
        # halfway to the next: at k / fps, or at a variable-rate file's own timestamps).
        windows = [frame_window(t, self.fps, clock) for t in self.times]
        terms = [f"between(t,{low:.6f},{high - 1e-4:.6f})" for low, high in windows]
        return "select='" + "+".join(terms) + "'"


@dataclass(frozen=True)
class MouthCrop:
    """Keep the `box` of every frame, gray and scaled to `size`, in `folder` (for the lip-sync check)."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]
    folder: Path

    @classmethod
    def of(cls, box: tuple[int, int, int, int], folder: Path, max_width: int = 64) -> MouthCrop:
        # Motion is measured on a small copy: it is what a mouth does, not its detail, that counts.
        x1, y1, x2, y2 = box
        w, h = max(2, x2 - x1), max(2, y2 - y1)
        if w > max_width:
            w, h = max_width, max(2, round(h * max_width / w))
        return cls(box=(x1, y1, x1 + max(2, x2 - x1), y1 + max(2, y2 - y1)), size=(w, h), folder=folder)

    def filter(self) -> str:
        x1, y1, x2, y2 = self.box
        return f"crop={x2 - x1}:{y2 - y1}:{x1}:{y1},scale={self.size[0]}:{self.size[1]},format=gray"


def analysis_args(
    path: Path,
    *,
    video: bool,
    audio: bool,
    pcm: bool,
    thresholds: QualityThresholds,
    grab: FrameGrab | None = None,
    mouth: MouthCrop | None = None,
    freeze: bool = True,
) -> list[str]:
    """The ffmpeg arguments of the single analysis pass (built in this one place).

    `freeze=False` leaves out freezedetect, which costs about as much as the decode itself."""
    t = thresholds
    graph: list[str] = []
    maps: list[str] = []
    extra_outputs: list[str] = []
    inputs = ["-i", str(path)]
    if video:
        video_in = "[0:v:0]"
        if mouth is not None:
            graph.append(f"[0:v:0]split=2[vall][vmouth];[vmouth]{mouth.filter()}[mouth]")
            video_in = "[vall]"
            extra_outputs += _raw_output("mouth", mouth.folder / "mouth.gray")
        detect = f"{video_in}blackdetect=d={t.black_min_s:g}:pix_th={t.black_pixel_threshold:g}"
        if freeze:
            detect += f",freezedetect=n={t.freeze_noise_db:g}dB:d={t.freeze_min_s:g}"
        if grab is None:
            graph.append(detect + "[vout]")
            maps += ["-map", "[vout]"]
        else:
            # The detectors see every frame; only the chosen ones go on to a file. Every frame also
            # goes to the null output, so its clock (`time=`) shows where decoding really stopped.
            graph.append(f"{detect},split=2[vout][vsel];[vsel]{grab.select(grab.clock)},format=gray[vgrab]")
            maps += ["-map", "[vout]"]
            grabbed = [("vgrab", "output.gray")]
            if grab.reference is not None:
                graph.append(f"[1:v:0]{grab.select(grab.reference_clock)},format=gray[rgrab]")
                inputs += ["-i", str(grab.reference)]
                grabbed.append(("rgrab", "reference.gray"))
            for label, name in grabbed:
                extra_outputs += _raw_output(label, grab.folder / name)
    if audio:
        measure = (
            f"volumedetect,silencedetect=noise={t.silence_noise_db:g}dB:d={t.silence_min_s:g},"
            "ebur128=peak=true:framelog=verbose[aout]"
        )
        if pcm:
            graph.append(f"[0:a:0]asplit=2[ameasure][apcm];[ameasure]{measure}")
            graph.append(f"[apcm]aresample={PCM_RATE},aformat=sample_fmts=s16:channel_layouts=mono[apcmout]")
        else:
            graph.append(f"[0:a:0]{measure}")
        maps += ["-map", "[aout]"]
    args = ["-loglevel", "level+info", *inputs, "-filter_complex", ";".join(graph)]
    if maps:
        args += [*maps, "-f", "null", "-"]
    args += extra_outputs
    if audio and pcm:
        args += ["-map", "[apcmout]", "-f", "s16le", "pipe:1"]
    return args


def _raw_output(label: str, path: Path) -> list[str]:
    return ["-map", f"[{label}]", "-fps_mode", "passthrough", "-f", "rawvideo", "-y", str(path)]


def _read_gray(path: Path, size: tuple[int, int]) -> list[Frame]:
    width, height = size
    data = path.read_bytes() if path.exists() else b""
    count = len(data) // (width * height)
    return list(np.frombuffer(data[: count * width * height], dtype=np.uint8).reshape(count, height, width))


def analyze(
    path: Path,
    *,
    video: bool = True,
    audio: bool = True,
    pcm: bool = False,
    thresholds: QualityThresholds | None = None,
    grab: FrameGrab | None = None,
    mouth: MouthCrop | None = None,
    freeze: bool = True,
    timeout: float = 600.0,
) -> Findings:
    """Decode `path` once through all analysis filters; `pcm` also returns its audio as 16 kHz mono,
    `grab` also the frames at chosen times of it (and of a reference file), `mouth` the mouth crop
    of every frame."""
    if not video and not audio:
        return Findings()
    grab = grab if video else None
    mouth = mouth if video else None
    args = analysis_args(
        path,
        video=video,
        audio=audio,
        pcm=pcm,
        thresholds=thresholds or QualityThresholds(),
        grab=grab,
        mouth=mouth,
        freeze=freeze,
    )
    completed = run_ffmpeg(args, timeout=timeout, path=path)
    found = parse_filter_log(completed.stderr.decode("utf-8", "replace"))
    if audio and pcm:
        found.pcm16k = pcm_to_float(completed.stdout)
    if grab is not None:
        found.frames = _read_gray(grab.folder / "output.gray", grab.size)
        if grab.reference is not None:
            found.reference_frames = _read_gray(grab.folder / "reference.gray", grab.size)
    if mouth is not None:
        crops = _read_gray(mouth.folder / "mouth.gray", mouth.size)
        found.mouth_crops = (
            np.stack(crops) if crops else np.zeros((0, mouth.size[1], mouth.size[0]), np.uint8)
        )
    return found


def pcm_to_float(data: bytes) -> npt.NDArray[np.float32]:
    """Signed 16-bit little-endian PCM to float32 in [-1, 1]."""
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0


def parse_named_volumes(stderr: str) -> dict[str, float]:
    """max_volume of each `volumedetect@NAME` instance (the last report of each); none for no samples."""
    volumes: dict[str, float] = {}
    for name, value in re.findall(rf"\[volumedetect@(\w+) @ [^\]]*\][^\n]*?max_volume: {_NUMBER} dB", stderr):
        volumes[name] = _float(value)
    return volumes
