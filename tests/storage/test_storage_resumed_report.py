"""A manifest resumed on another worker whose outputs an earlier run there already delivered: its quality
report is read back from its final key, since that worker's working copies are on its own disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_lipsync.flows.manifest import _report_and_pictures
from prefect_lipsync.pipeline import LanguageOutput
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.quality import QualityReport


def test_a_report_delivered_by_another_worker_is_read_from_its_final_key(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = f"s3://{bucket}/dubs"
    monkeypatch.setenv("PREFECT_LIPSYNC_CACHE_DIR", str(tmp_path / "w1"))
    first = Destination.of(out_dir)  # worker 1's outbox
    local = first.local / "promo" / "promo.es.mp4.report.json"
    local.parent.mkdir(parents=True)
    local.write_text(QualityReport(verdict="pass", output="promo.es.mp4").model_dump_json())
    picture = first.local / "promo" / "promo.es.mp4.frame.png"
    picture.write_bytes(b"\x89PNG")
    report_ref, picture_ref = first.publish([local, picture])
    output = LanguageOutput(language="es", report=report_ref, pictures=[picture_ref])

    found = _report_and_pictures(first, output)  # on worker 1: its working copies, no read back
    assert found is not None and found[1] == [str(picture)]

    monkeypatch.setenv("PREFECT_LIPSYNC_CACHE_DIR", str(tmp_path / "w2"))
    second = Destination.of(out_dir)  # worker 2: the same out_dir, another outbox with none of it
    assert second.local != first.local
    found = _report_and_pictures(second, output)
    assert found is not None
    report, pictures = found
    assert report.verdict == "pass" and pictures == [picture_ref]

    missing = LanguageOutput(language="de", report=f"{out_dir}/promo/promo.de.mp4.report.json")
    assert _report_and_pictures(second, missing) is None  # no artifact, never a failed manifest
