"""A reviewer's decision on held outputs (quality policy `ask`), carried out: delivered or kept aside.

No Prefect here: the flow layer asks the person (a paused flow run) and hands the answer over.
"""

from __future__ import annotations

from pathlib import Path

from prefect_lipsync.pipeline.delivery import record_rejection, release_held, report_path_of
from prefect_lipsync.pipeline.destination import Destination
from prefect_lipsync.pipeline.outcome import LanguageOutput


def carry_out_decision(
    output: LanguageOutput, out_dir: Destination, *, approved: bool, reviewer: str, comment: str
) -> None:
    """Carry out a reviewer's decision on one held output, and say so in its report."""
    assert output.quarantined_to is not None
    held = out_dir.local_of(output.quarantined_to)
    if not approved:
        record_rejection(held, reviewer=reviewer, comment=comment)
        out_dir.publish([report_path_of(held)])
        output.held = False
        return
    assert output.output_name is not None
    delivered, report = release_held(
        held,
        out_dir=out_dir.local,
        name=output.output_name,
        reviewer=reviewer,
        comment=comment,
        ref=out_dir.ref,
    )
    pictures = [
        delivered.parent / Path(p).name.replace(held.stem, delivered.stem, 1) for p in output.pictures
    ]
    # Published like any delivery (the video last), then the quarantined copies are gone.
    out_dir.publish([*pictures, report])
    out_dir.publish([delivered], keep_local=False)
    out_dir.drop_quarantined(output.quarantined_to, output.pictures)
    output.output, output.report, output.quarantined_to, output.held = (
        out_dir.ref(delivered),
        out_dir.ref(report),
        None,
        False,
    )
    output.pictures = [out_dir.ref(p) for p in pictures]
