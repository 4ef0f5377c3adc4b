"""Media for the media tests (made with real ffmpeg) and a counter of real ffprobe/ffmpeg runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect_lipsync.media.ffmpeg_runner import run_ffmpeg

RATES = {"24": "24", "25": "25", "30000/1001": "30000/1001", "50": "50", "60": "60"}
SIZE = (160, 90)


def make_video(
    out: Path, rate: str, *, duration: float = 1.0, audio: bool = True, extra: tuple[str, ...] = ()
) -> None:
    args = ["-y", "-f", "lavfi", "-i", f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate={rate}:duration={duration}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
    args += [*extra, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    run_ffmpeg([*args, str(out)], timeout=60, path=out)


@dataclass(frozen=True)
class MediaSet:
    root: Path
    videos: dict[str, Path]  # rate name -> mp4 with an AAC track
    mkv_ntsc: Path
    vfr: Path
    wav: Path
    m4a: Path
    cover_mp3: Path
    truncated: Path
    text_as_mp4: Path
    beep: Path  # 3 s: silence, a 440 Hz tone from 1 s to 2 s, silence

    @property
    def good(self) -> list[Path]:
        return [*self.videos.values(), self.mkv_ntsc, self.vfr, self.wav, self.m4a, self.cover_mp3]


@dataclass
class ProcessLog:
    """Counts real ffprobe/ffmpeg runs: wrapper scripts earlier on PATH append a line per run."""

    path: Path

    def runs(self, tool: str | None = None) -> list[str]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [line for line in lines if tool is None or line.split(" ", 1)[0] == tool]

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
