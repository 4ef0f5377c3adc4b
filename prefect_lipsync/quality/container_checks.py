"""Checks of the container: it reads, has one video and one audio stream, the source's length,
size and frame rate, and decodes without errors."""

from __future__ import annotations

import re

from prefect_lipsync.quality.analysis import Findings
from prefect_lipsync.quality.models import CheckResult, QualityThresholds
from prefect_lipsync.quality.streams import StreamFacts


def container_checks(out: StreamFacts, src: StreamFacts, t: QualityThresholds) -> list[CheckResult]:
    checks = [
        CheckResult(
            name="container",
            status="pass",
            value=round(out.duration, 3),
            message="ffprobe reads the container.",
        )
    ]
    ok_streams = out.video_count == 1 and out.audio_count == 1
    checks.append(
        CheckResult(
            name="streams",
            status="pass" if ok_streams else "fail",
            value=f"{out.video_count} video, {out.audio_count} audio",
            threshold="1 video, 1 audio",
            message="One video and one audio stream."
            if ok_streams
            else f"Expected one video and one audio stream, found {out.video_count} video and "
            f"{out.audio_count} audio.",
        )
    )
    if out.video_count == 0:
        return checks
    tolerance = max(t.duration_tolerance_frames * src.frame_s, t.duration_tolerance_s)
    diff = out.duration - src.duration
    checks.append(
        CheckResult(
            name="duration",
            status="pass" if abs(diff) <= tolerance + 1e-6 else "fail",
            value=round(diff, 3),
            threshold=f"|output - source| <= {tolerance:.3f} s",
            message=f"The output lasts {out.duration:.3f} s, the source {src.duration:.3f} s "
            f"({diff:+.3f} s).",
        )
    )
    # Compared as shown: an upright 1080x1920 output of a 1920x1080 source turned 90 degrees is right.
    same_size = (out.width, out.height) == (src.width, src.height)
    checks.append(
        CheckResult(
            name="geometry",
            status="pass" if same_size else "fail",
            value=f"{out.width}x{out.height}",
            threshold=f"{src.width}x{src.height} as shown",
            message="Same picture size as the source, as shown."
            if same_size
            else f"The output shows {out.size_text}, the source {src.size_text}.",
        )
    )
    same_rate = out.fps == src.fps
    checks.append(
        CheckResult(
            name="frame_rate",
            status="pass" if same_rate else "warn",
            value=str(out.fps),
            threshold=f"= {src.fps}",
            message="Same frame rate as the source."
            if same_rate
            else f"The output runs at {out.fps} fps, the source at {src.fps} fps (the service re-encodes).",
        )
    )
    return checks


def decode_check(found: Findings, out: StreamFacts, t: QualityThresholds) -> CheckResult:
    tolerance = max(t.duration_tolerance_frames * out.frame_s, t.duration_tolerance_s, 0.5)
    short = found.decoded_until is not None and found.decoded_until < out.duration - tolerance
    if found.errors or short:
        # "[h264 @ 0x55...] [error] Invalid NAL unit size." -> "Invalid NAL unit size"
        first = re.sub(r"^(\[[^\]]*\]\s*)+", "", found.errors[0]).rstrip(".") if found.errors else ""
        where = f"; decoding stopped at {found.decoded_until:.2f} s of {out.duration:.2f} s" if short else ""
        return CheckResult(
            name="decode",
            status="fail",
            value=len(found.errors),
            threshold="no decode errors",
            message=f"Decoding printed {len(found.errors)} error(s){where}{': ' + first if first else ''}.",
        )
    return CheckResult(
        name="decode",
        status="pass",
        value=0,
        threshold="no decode errors",
        message="The whole file decodes without errors.",
    )
