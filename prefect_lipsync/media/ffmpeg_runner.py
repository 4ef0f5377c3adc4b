"""The one place where ffmpeg and ffprobe processes are started.

ffmpeg-python builds commands but its `run()` and `probe()` take no timeout; every process here
is started with one and killed when it runs over, and a failure carries the tail of stderr.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ffmpeg

from prefect_lipsync.media.errors import FFmpegFailed, FFmpegNotFound, FFmpegTimeout
from prefect_lipsync.media.hashing import FileIdentity, file_identity

DEFAULT_TIMEOUT_S = 120.0
STDERR_TAIL_CHARS = 2000


def _require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise FFmpegNotFound(
            None, f"{binary} is not installed; install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg)"
        )
    return found


def run_process(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    path: str | Path | None = None,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg/ffprobe `argv` with a timeout; raise FFmpegFailed/FFmpegTimeout naming `path`."""
    argv = [_require(argv[0]), *argv[1:]]
    try:
        completed = subprocess.run(argv, input=input_bytes, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FFmpegTimeout(path, f"{Path(argv[0]).name} did not finish within {timeout:g} s") from exc
    if completed.returncode != 0:
        tail = completed.stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL_CHARS:]
        raise FFmpegFailed(path, f"{Path(argv[0]).name} exited with code {completed.returncode}", tail)
    return completed


def run_ffmpeg(
    args: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, path: str | Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run `ffmpeg -hide_banner -nostdin <args>` with a timeout."""
    return run_process(["ffmpeg", "-hide_banner", "-nostdin", *args], timeout=timeout, path=path)


#: Bytes of ffmpeg output `run_ffmpeg_remembered` keeps per process: a dozen sources' thumbnails or a few
#: minutes of 16 kHz dubs; the oldest go first. An output over REMEMBERED_STDOUT_LARGEST is not kept.
REMEMBERED_STDOUT_MAX_BYTES = 32 * 1024 * 1024
REMEMBERED_STDOUT_LARGEST = 4 * 1024 * 1024

_remembered: OrderedDict[tuple[tuple[str, ...], tuple[FileIdentity, ...]], bytes] = OrderedDict()
_remembered_bytes = 0
_remembered_lock = threading.Lock()


def run_ffmpeg_remembered(
    args: Sequence[str],
    *,
    inputs: Sequence[Path],
    timeout: float = DEFAULT_TIMEOUT_S,
    path: str | Path | None = None,
) -> bytes:
    """The stdout of `ffmpeg <args>` reading `inputs`, run once per process while those files stay unchanged
    (same size, mtime and inode): a batch pictures one source's frames for every output made from it."""
    global _remembered_bytes
    try:
        key = (tuple(args), tuple(file_identity(p) for p in inputs))
    except OSError:
        return run_ffmpeg(args, timeout=timeout, path=path).stdout  # ffmpeg says what is wrong with the file
    with _remembered_lock:
        if key in _remembered:
            _remembered.move_to_end(key)
            return _remembered[key]
    out = run_ffmpeg(args, timeout=timeout, path=path).stdout
    if len(out) <= REMEMBERED_STDOUT_LARGEST:
        with _remembered_lock:
            if key not in _remembered:
                _remembered[key] = out
                _remembered_bytes += len(out)
            while _remembered_bytes > REMEMBERED_STDOUT_MAX_BYTES:
                _, dropped = _remembered.popitem(last=False)
                _remembered_bytes -= len(dropped)
    return out


def run_stream(
    stream: Any, *, timeout: float = DEFAULT_TIMEOUT_S, path: str | Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a command built with ffmpeg-python (`ffmpeg.input(...).output(...)`) with a timeout."""
    argv = ffmpeg.compile(stream, cmd="ffmpeg", overwrite_output=True)
    return run_process([argv[0], "-hide_banner", "-nostdin", *argv[1:]], timeout=timeout, path=path)


def run_ffprobe_json(
    path: str | Path, *, timeout: float = 30.0, extra_args: Sequence[str] = ()
) -> dict[str, Any]:
    """`ffprobe -of json -show_format -show_streams PATH` (what `ffmpeg.probe` runs), with a timeout."""
    import json

    argv = ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", *extra_args, str(path)]
    completed = run_process(argv, timeout=timeout, path=path)
    try:
        parsed: dict[str, Any] = json.loads(completed.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise FFmpegFailed(path, "ffprobe printed something that is not JSON") from exc
    return parsed
