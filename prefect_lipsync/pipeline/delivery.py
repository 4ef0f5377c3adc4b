"""Staged delivery: a result is checked under a staging name and reaches its delivery name only when
it passed (or a person approved it); a failed one goes to quarantine with its report and pictures.

    out/.staging/promo.es.mp4      downloaded, being checked (never looked at downstream)
    out/promo.es.mp4               delivered: complete and checked, with .report.json and pictures
    out/quarantine/promo.es.mp4    failed or flagged, with .report.json, .quarantine.json, pictures
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.quality import QualityReport

DeliveryPolicy = Literal["fail", "warn", "ask"]
STAGING_DIR = ".staging"
QUARANTINE_DIR = "quarantine"


def staging_path(out_dir: Path, name: str) -> Path:
    return out_dir / STAGING_DIR / name


def report_path_of(video: Path) -> Path:
    return video.with_name(video.name + ".report.json")


def quarantine_note_of(video: Path) -> Path:
    """The `.quarantine.json` beside a quarantined output: why it is there."""
    return video.with_name(video.name + ".quarantine.json")


def failed_checks(report: QualityReport) -> list[str]:
    """Each failed check in one line: its name, measured value and threshold."""
    out = []
    for check in report.checks:
        if check.status != "fail":
            continue
        value = "" if check.value is None else f" = {check.value}"
        threshold = f" (threshold {check.threshold})" if check.threshold else ""
        out.append(f"{check.name}{value}{threshold}: {check.message}")
    return out


def flagged(report: QualityReport) -> bool:
    safety = report.check("content_safety")
    return safety is not None and safety.status == "fail"


@dataclass
class Settled:
    """Where a checked output ended: delivered, quarantined, or held in quarantine for a decision."""

    video: Path
    report: Path
    pictures: list[Path] = field(default_factory=list)
    quarantined: bool = False
    held: bool = False


def _move(source: Path, folder: Path, name: str | None = None) -> Path:
    target = folder / (name or source.name)
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    return target


def _write_report(video: Path, report: QualityReport, extra: dict[str, Any] | None = None) -> Path:
    body = {**report.model_dump(mode="json"), **(extra or {})}
    return write_text_atomic(report_path_of(video), json.dumps(body, indent=2))


def _free_name(folder: Path, name: str) -> str:
    """A name not yet used in `folder` (quarantine keeps every failed attempt)."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, counter = name, 1
    while (folder / candidate).exists():
        candidate = f"{stem}.{counter}{suffix}"
        counter += 1
    return candidate


def settle(
    staged: Path,
    report: QualityReport,
    pictures: Sequence[Path],
    *,
    out_dir: Path,
    name: str,
    policy: DeliveryPolicy,
    ref: Callable[[Path], str] = str,
) -> Settled:
    """Deliver, quarantine or hold one checked output; the video moves last, so its name means done.

    `ref` names a settled file as the report records it (its final key, for object storage).
    """
    hold = report.verdict == "fail" and policy == "ask" and not flagged(report)
    quarantine = flagged(report) or (report.verdict == "fail" and policy != "warn")
    if not quarantine:
        folder, final_name = out_dir, name
    else:
        folder = out_dir / QUARANTINE_DIR
        final_name = _free_name(folder, name)
    final = folder / final_name
    moved = [_move(p, folder, p.name.replace(staged.stem, Path(final_name).stem, 1)) for p in pictures]
    report.output = ref(final)
    report.quarantined_to = ref(final) if quarantine else None
    report_file = _write_report(final, report, {"held_for_review": True} if hold else None)
    if quarantine:
        why = {"reasons": failed_checks(report), "held_for_review": hold, "report": ref(report_file)}
        write_text_atomic(quarantine_note_of(final), json.dumps(why, indent=2))
    _move(staged, folder, final_name)
    return Settled(video=final, report=report_file, pictures=moved, quarantined=quarantine, held=hold)


def _pictures_of(video: Path) -> list[Path]:
    """`<stem>.<kind>.png` beside the video (not those of `<stem>.1.mp4`, another attempt)."""
    prefix = video.stem + "."
    return [
        p for p in video.parent.glob(f"{video.stem}.*.png") if "." not in p.name[len(prefix) : -len(".png")]
    ]


def release_held(
    held_video: Path,
    *,
    out_dir: Path,
    name: str,
    reviewer: str,
    comment: str,
    ref: Callable[[Path], str] = str,
) -> tuple[Path, Path]:
    """A person approved a held output: move it and its report to the delivery name, with the decision.

    Returns (video, report) at their delivery names.
    """
    report_file = report_path_of(held_video)
    body = json.loads(report_file.read_text(encoding="utf-8"))
    final = out_dir / name
    body.update(
        {
            "output": ref(final),
            "quarantined_to": None,
            "held_for_review": False,
            "review": {
                "approved": True,
                "reviewer": reviewer,
                "comment": comment,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            },
        }
    )
    for picture in _pictures_of(held_video):
        _move(picture, out_dir, picture.name.replace(held_video.stem, final.stem, 1))
    delivered_report = write_text_atomic(report_path_of(final), json.dumps(body, indent=2))
    report_file.unlink(missing_ok=True)
    quarantine_note_of(held_video).unlink(missing_ok=True)
    _move(held_video, out_dir, name)
    return final, delivered_report


def record_rejection(held_video: Path, *, reviewer: str, comment: str) -> None:
    """A person rejected a held output: it stays in quarantine, and its report says who and why."""
    report_file = report_path_of(held_video)
    body = json.loads(report_file.read_text(encoding="utf-8"))
    body["held_for_review"] = False
    body["review"] = {
        "approved": False,
        "reviewer": reviewer,
        "comment": comment,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_text_atomic(report_file, json.dumps(body, indent=2))
