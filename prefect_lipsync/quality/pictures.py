"""Pictures a person can read at a glance, PNGs next to the output: a contact sheet, a timeline, and
per segment the mouth-motion curve over the audio envelope with the measured lip lag."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from prefect_lipsync.files import atomic_path
from prefect_lipsync.quality.frames import sample_frames
from prefect_lipsync.quality.models import QualityReport, TimeRange
from prefect_lipsync.quality.payload import PlannedSegment, planned_segments
from prefect_lipsync.quality.slots import check_slot
from prefect_lipsync.quality.ssim import Box
from prefect_lipsync.quality.streams import probe_streams

THUMB_WIDTH = 320
MAX_ROWS = 8
STATUS_COLOURS = {"pass": (46, 160, 67), "warn": (230, 160, 20), "fail": (210, 50, 50)}
SEGMENT_COLOURS = [
    (66, 133, 244),
    (171, 71, 188),
    (0, 172, 193),
    (124, 179, 66),
    (255, 112, 67),
    (141, 110, 99),
]
# Checks whose findings are stretches of time, in the order the timeline shows them.
TIMELINE_ROWS = (
    ("black_frames", "black"),
    ("frozen_frames", "frozen"),
    ("speech_in_segments", "silence in segment"),
    ("av_offset", "A/V offset"),
    ("lipsync_offset", "lips off the audio"),
    ("outside_face_unchanged", "picture changed"),
)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


#: Colours of a saved picture. A palette PNG is about a third of a full-colour one (a contact sheet
#: of 676x280: 62 KB -> 18 KB), and every picture is inlined in a quality artifact the Prefect
#: server stores: at a batch's scale those bytes were most of its write load (bench_batch.py).
CHART_COLOURS = 64
PHOTO_COLOURS = 128


def _save_atomic(image: Image.Image, path: Path, *, colours: int = CHART_COLOURS) -> Path:
    """`image` as a palette PNG: charts keep their few exact colours (median cut), frames are
    dithered over an octree palette, and one compression pass: a contact sheet took 73 ms with median
    cut and PNG optimize, 9 ms this way, in a smaller file (26 KB against 44 KB)."""
    photo = colours > CHART_COLOURS
    method = Image.Quantize.FASTOCTREE if photo else Image.Quantize.MEDIANCUT
    dither = Image.Dither.FLOYDSTEINBERG if photo else Image.Dither.NONE
    small = image.convert("RGB").quantize(colors=colours, method=method, dither=dither)
    with atomic_path(path) as tmp:
        small.save(tmp, format="PNG")
    return path


def _middles(segments: Sequence[PlannedSegment], duration: float) -> list[tuple[str, float]]:
    if not segments:
        return [(f"{f:.0%} of the video", duration * f) for f in (0.25, 0.5, 0.75)]
    chosen = list(segments)
    if len(chosen) > MAX_ROWS:
        chosen = [chosen[round(i * (len(chosen) - 1) / (MAX_ROWS - 1))] for i in range(MAX_ROWS)]
    return [(s.label, (s.start + s.end) / 2) for s in chosen]


def contact_sheet(
    output: Path,
    source: Path,
    path: Path,
    *,
    segments: Sequence[PlannedSegment] = (),
    mouth_box: Box | None = None,
    verdict: str | None = None,
    timeout: float = 120.0,
) -> Path:
    """Source and output frames side by side at the middle of each segment, the mouth outlined."""
    src = probe_streams(source, timeout=timeout)
    out = probe_streams(output, timeout=timeout)
    rows = _middles(segments, min(src.duration, out.duration))
    times = [t for _, t in rows]
    thumbs: list[list[Image.Image]] = []
    for facts in (src, out):
        if not (facts.width and facts.height and facts.fps):
            thumbs.append([])
            continue
        width = min(THUMB_WIDTH, facts.width)
        frames = sample_frames(
            facts.path,
            times,
            size=(facts.width, facts.height),
            fps=facts.fps,
            gray=False,
            width=width,
            clock=facts.clock,
            timeout=timeout,
        )
        thumbs.append([Image.fromarray(f, "RGB") for f in frames])
    thumb_h = max((img.height for column in thumbs for img in column), default=180)
    pad, label_h, header_h = 12, 22, 54
    width = 2 * THUMB_WIDTH + 3 * pad
    height = header_h + len(rows) * (thumb_h + label_h + pad) + pad
    sheet = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    title = f"{output.name}: source (left) vs output (right)"
    draw.text((pad, 8), title, fill=(20, 20, 20), font=_font(16))
    if verdict:
        draw.text(
            (pad, 30),
            f"verdict: {verdict.upper()}",
            fill=STATUS_COLOURS.get(verdict, (0, 0, 0)),
            font=_font(14),
        )
    if mouth_box is not None:
        draw.text((pad + 130, 30), "yellow box: mouth region", fill=(150, 120, 0), font=_font(14))
    for r, (label, at) in enumerate(rows):
        y = header_h + r * (thumb_h + label_h + pad)
        draw.text((pad, y), f"{label}, frame at {at:.2f} s", fill=(40, 40, 40), font=_font(13))
        for c, (column, facts) in enumerate(zip(thumbs, (src, out), strict=True)):
            x = pad + c * (THUMB_WIDTH + pad)
            top = y + label_h
            if r < len(column):
                img = column[r]
                sheet.paste(img, (x, top))
                if mouth_box is not None and facts.width:
                    k = img.width / facts.width
                    x1, y1, x2, y2 = (round(v * k) for v in mouth_box)
                    draw.rectangle(
                        (x + x1 - 2, top + y1 - 2, x + x2 + 2, top + y2 + 2), outline=(255, 230, 0), width=2
                    )
            else:
                draw.rectangle((x, top, x + THUMB_WIDTH, top + thumb_h), outline=(150, 150, 150))
                draw.text((x + 10, top + thumb_h // 2), "no frame", fill=(120, 120, 120), font=_font(13))
    return _save_atomic(sheet, path, colours=PHOTO_COLOURS)


def timeline(
    report: QualityReport, path: Path, *, duration: float, segments: Sequence[PlannedSegment] = ()
) -> Path:
    """The video's length, its segments (colour per audio file), and where the checks found problems."""
    left, right, pad, row_h = 170, 30, 14, 30
    width = 1100
    rows = [("segments", None), *((label, name) for name, label in TIMELINE_ROWS if report.check(name))]
    height = 60 + len(rows) * (row_h + 8) + 40
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    span = max(duration, 1e-3)
    scale = (width - left - right) / span

    def x_of(t: float) -> float:
        return left + max(0.0, min(t, span)) * scale

    draw.text(
        (pad, 10),
        f"{Path(report.output).name}: verdict {report.verdict.upper()}",
        fill=STATUS_COLOURS[report.verdict],
        font=_font(16),
    )
    colours: dict[str, tuple[int, int, int]] = {}
    for r, (label, name) in enumerate(rows):
        y = 50 + r * (row_h + 8)
        status = report.check(name).status if name and report.check(name) else None  # type: ignore[union-attr]
        draw.text((pad, y + 7), label, fill=STATUS_COLOURS.get(status or "", (30, 30, 30)), font=_font(14))
        draw.rectangle((left, y, width - right, y + row_h), fill=(238, 238, 238))
        if name is None:
            for seg in segments:
                colour = colours.setdefault(
                    seg.audio_ref, SEGMENT_COLOURS[len(colours) % len(SEGMENT_COLOURS)]
                )
                draw.rectangle((x_of(seg.start), y, x_of(seg.end), y + row_h), fill=colour)
                draw.text(
                    (x_of(seg.start) + 3, y + 8), str(seg.index + 1), fill=(255, 255, 255), font=_font(13)
                )
            continue
        check = report.check(name)
        ranges: list[TimeRange] = check.at if check else []
        colour = STATUS_COLOURS["fail" if check and check.status == "fail" else "warn"]
        for found in ranges:
            x1, x2 = x_of(found.start), x_of(found.end_or(duration))
            draw.rectangle((x1, y, max(x2, x1 + 3), y + row_h), fill=colour)
    axis_y = 50 + len(rows) * (row_h + 8) + 4
    draw.line((left, axis_y, width - right, axis_y), fill=(60, 60, 60))
    step = next(s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1e9) if span / s <= 12)
    tick = 0.0
    while tick <= span + 1e-9:
        draw.line((x_of(tick), axis_y, x_of(tick), axis_y + 5), fill=(60, 60, 60))
        draw.text((x_of(tick) - 8, axis_y + 8), f"{tick:g}s", fill=(60, 60, 60), font=_font(12))
        tick += step
    return _save_atomic(image, path)


AUDIO_COLOUR = (66, 133, 244)
MOUTH_COLOUR = (230, 120, 20)


def _curve(
    draw: ImageDraw.ImageDraw, values: Sequence[float], box: tuple[int, int, int, int], colour: Any
) -> None:
    x1, y1, x2, y2 = box
    if len(values) < 2:
        return
    step = (x2 - x1) / (len(values) - 1)
    points = [(x1 + i * step, y2 - v * (y2 - y1)) for i, v in enumerate(values)]
    draw.line(points, fill=colour, width=2)


def lipsync_picture(report: QualityReport, path: Path) -> Path:
    """Per segment, the mouth's motion (orange) over the audio envelope's change (blue), with the lag."""
    width, pad, row_h, label_h, header_h = 1100, 14, 120, 22, 56
    rows = report.lipsync
    height = header_h + len(rows) * (row_h + label_h + pad) + pad
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    check = report.check("lipsync_offset")
    title = f"{Path(report.output).name}: lip sync" + (f", {check.status.upper()}" if check else "")
    draw.text(
        (pad, 8), title, fill=STATUS_COLOURS.get(check.status if check else "", (20, 20, 20)), font=_font(16)
    )
    draw.text((pad, 30), "blue: audio loudness change", fill=AUDIO_COLOUR, font=_font(13))
    draw.text((pad + 230, 30), "orange: mouth motion", fill=MOUTH_COLOUR, font=_font(13))
    for r, seg in enumerate(rows):
        y = header_h + r * (row_h + label_h + pad)
        text = (
            f"{seg.label}: lips {seg.lag_ms:+.0f} ms after the sound, confidence {seg.confidence:.2f} "
            f"({seg.status}; {seg.start:.2f}-{seg.end:.2f} s)"
        )
        draw.text((pad, y), text, fill=STATUS_COLOURS[seg.status], font=_font(13))
        box = (pad, y + label_h, width - pad, y + label_h + row_h)
        draw.rectangle(box, fill=(246, 246, 246))
        _curve(draw, seg.envelope, box, AUDIO_COLOUR)
        _curve(draw, seg.motion, box, MOUTH_COLOUR)
        # Where the lag puts the sound's moment in the mouth's curve: a marker one lag from the left edge.
        span = max(seg.end - seg.start, 1e-3)
        shift = seg.lag_ms / 1000 * (box[2] - box[0]) / span
        mid = (box[0] + box[2]) / 2
        draw.line((mid, box[1], mid, box[3]), fill=(150, 150, 150))
        draw.line((mid + shift, box[1], mid + shift, box[3]), fill=STATUS_COLOURS[seg.status], width=2)
    return _save_atomic(image, path)


def write_pictures(
    report: QualityReport,
    *,
    output: Path,
    source: Path,
    request_payload: Mapping[str, Any] | None = None,
    mouth_box: Box | None = None,
    timeout: float = 120.0,
) -> dict[str, Path]:
    """Write `<output>.contact.png`, `<output>.timeline.png` and, with a lip-sync measure,
    `<output>.lipsync.png` beside the output (or its quarantined copy). The mouth outlined is
    `mouth_box`, else the one the checks used."""
    with check_slot():  # decodes like a check: shares the process's check slots
        mouth_box = mouth_box if mouth_box is not None else report.mouth_box
        where = Path(report.quarantined_to) if report.quarantined_to else Path(output)
        src = probe_streams(Path(source), timeout=timeout)
        container = report.check("container")
        readable = container is not None and container.status == "pass" and where.exists()
        out_duration = probe_streams(where, timeout=timeout).duration if readable else src.duration
        segments = planned_segments(request_payload, src.duration) if request_payload else []
        pictures = {
            "timeline": timeline(
                report,
                where.with_name(where.stem + ".timeline.png"),
                duration=max(out_duration, src.duration),
                segments=segments,
            ),
        }
        if report.lipsync:
            pictures["lipsync"] = lipsync_picture(report, where.with_name(where.stem + ".lipsync.png"))
        if readable:
            pictures["contact_sheet"] = contact_sheet(
                where,
                Path(source),
                where.with_name(where.stem + ".contact.png"),
                segments=segments,
                mouth_box=mouth_box,
                verdict=report.verdict,
                timeout=timeout,
            )
        return pictures
