"""The contact sheet and timeline are written beside the output, as complete PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from prefect_lipsync.media.synth import mouth_box
from prefect_lipsync.quality import check_output
from prefect_lipsync.quality.pictures import write_pictures


def test_pictures_show_both_frames_per_segment_and_the_findings_in_time(scenario: Any, broken: Any) -> None:
    output = broken("black_second")
    report = check_output(output, source=scenario.source, request_payload=scenario.payload)
    pictures = write_pictures(
        report,
        output=output,
        source=scenario.source,
        request_payload=scenario.payload,
        mouth_box=mouth_box(320, 180),
    )
    assert set(pictures) == {"timeline", "contact_sheet"}
    for path in pictures.values():
        assert path.parent == output.parent and path.suffix == ".png"
        # Palette PNGs: about a third of full colour, and each is inlined in a quality artifact.
        assert Image.open(path).mode == "P"
    sheet = Image.open(pictures["contact_sheet"]).convert("RGB")  # saved as a palette PNG
    # Two thumbnails side by side, one row per segment.
    assert sheet.width >= 2 * 320 and sheet.height >= 2 * 180
    # The output column of segment 1 (its middle falls in the black second) is black; the source's is not.
    row_y = 54 + 22 + 90
    assert max(sheet.getpixel((12 + 320 + 12 + 20, row_y))) < 30  # type: ignore[arg-type]
    assert max(sheet.getpixel((12 + 20, row_y))) > 100  # type: ignore[arg-type]
    timeline = Image.open(pictures["timeline"]).convert("RGB")
    # The black row (second row) is red between 1 s and 2 s and grey before.
    x_of = lambda t: 170 + t * (1100 - 170 - 30) / 5.0  # noqa: E731
    y = 50 + 1 * 38 + 15
    assert timeline.getpixel((int(x_of(1.5)), y)) == (210, 50, 50)
    assert timeline.getpixel((int(x_of(0.5)), y)) == (238, 238, 238)
    assert not list(output.parent.glob(".*.tmp"))


def test_unreadable_output_still_gets_a_timeline(scenario: Any, broken: Any, tmp_path: Path) -> None:
    output = tmp_path / "x.mp4"
    output.write_bytes(broken("not_video").read_bytes())
    report = check_output(output, source=scenario.source)
    pictures = write_pictures(report, output=output, source=scenario.source)
    assert set(pictures) == {"timeline"} and pictures["timeline"].is_file()
