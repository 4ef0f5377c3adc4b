"""A synthetic talking face: a drawn face whose mouth opens with the speech envelope.

Frames are drawn with numpy/OpenCV and piped to ffmpeg as raw video (one run, with a timeout),
muxed with the speech. `delay_s` makes the mouth follow the speech that much later; `still`
keeps the mouth shut (what the emulator's previews show).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from prefect_lipsync.media.ffmpeg_runner import run_process
from prefect_lipsync.quality.avsync import decode_pcm16k
from prefect_lipsync.quality.face import mouth_box_of

SIZE = (320, 240)
FPS = 25
RATE = 16000
FACE_BOX = (110, 40, 210, 190)  # x1, y1, x2, y2 of the drawn face
MOUTH_BOX = mouth_box_of(FACE_BOX)  # where its mouth opens: where the checks look for a frontal mouth


def speech_envelope(speech: Path, frames: int) -> npt.NDArray[np.float64]:
    """The speech's loudness per video frame, 0..1 (RMS over each frame, peak-normalised)."""
    pcm = decode_pcm16k(speech, timeout=60).astype(np.float64)
    per = RATE // FPS
    padded = np.zeros(frames * per)
    padded[: min(pcm.size, padded.size)] = pcm[: padded.size]
    rms = np.sqrt((padded.reshape(frames, per) ** 2).mean(axis=1))
    return rms / max(float(rms.max()), 1e-9)


def _background() -> npt.NDArray[np.uint8]:
    # A fixed texture so the picture outside the face is not flat (and encodes like a real one).
    rng = np.random.default_rng(7)
    w, h = SIZE
    noise = rng.integers(60, 140, size=(h // 8, w // 8), dtype=np.uint8)
    return np.asarray(cv2.resize(noise, (w, h), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)


def draw_frames(opening: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """One gray frame per value of `opening` (0 shut .. 1 wide open)."""
    base = _background()
    x1, y1, x2, y2 = FACE_BOX
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    cv2.ellipse(base, (cx, cy), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, 190, -1)
    for ex in (cx - 22, cx + 22):
        cv2.circle(base, (ex, cy - 25), 6, 30, -1)
    mx1, my1, mx2, my2 = MOUTH_BOX
    mcx, mcy = (mx1 + mx2) // 2, (my1 + my2) // 2
    frames = np.empty((opening.size, SIZE[1], SIZE[0]), dtype=np.uint8)
    for k, value in enumerate(opening):
        frame = base.copy()
        half_h = 2 + round(float(value) * ((my2 - my1) // 2 - 2))
        cv2.ellipse(frame, (mcx, mcy), ((mx2 - mx1) // 2 - 2, half_h), 0, 0, 360, 40, -1)
        frames[k] = frame
    return frames


def make_talking_face(
    out: Path, speech: Path, *, duration: float, delay_s: float = 0.0, still: bool = False
) -> Path:
    """Write `out`: the face over `duration` s with `speech` as its audio, the mouth `delay_s` late."""
    frames = round(duration * FPS)
    envelope = speech_envelope(speech, frames)
    shift = round(delay_s * FPS)
    opening = np.zeros(frames) if still else np.concatenate([np.zeros(shift), envelope[: frames - shift]])
    pixels = draw_frames(np.clip(opening * 1.5, 0.0, 1.0))
    w, h = SIZE
    args = [
        "ffmpeg", "-hide_banner", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "pipe:0",
        "-i", str(speech),
        "-filter_complex", f"[1:a]apad,atrim=0:{duration}[a]",
        "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-t", f"{duration}", str(out),
    ]  # fmt: skip
    run_process(args, timeout=120, path=out, input_bytes=pixels.tobytes())
    return out
