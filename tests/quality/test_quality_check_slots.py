"""A process checks and draws at most PREFECT_LIPSYNC_CHECKS_AT_ONCE outputs at once: a batch's many
jobs in flight do not decode all their outputs together (memory grows with each, the cores do not)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from prefect_lipsync.media import synth
from prefect_lipsync.pipeline.steps import check_job_output
from prefect_lipsync.quality import slots
from prefect_lipsync.quality.slots import CHECKS_AT_ONCE_ENV, check_slot, checks_at_once


@pytest.fixture
def two_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECKS_AT_ONCE_ENV, "2")
    monkeypatch.setattr(slots, "_slots", None)  # made anew from the setting


def test_no_more_than_the_setting_hold_a_slot_at_once(two_slots: None) -> None:
    holding, most = 0, 0
    count = threading.Lock()

    def work() -> None:
        nonlocal holding, most
        with check_slot():
            with count:
                holding += 1
                most = max(most, holding)
            time.sleep(0.05)
            with count:
                holding -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert most == 2


def test_a_check_waits_for_a_free_slot(two_slots: None, tmp_path: Path) -> None:
    card = synth.make_talking_card(tmp_path / "card.mp4", duration=1.0, size=(160, 96))
    reports: list[object] = []
    with check_slot(), check_slot():  # every slot taken
        checking = threading.Thread(target=lambda: reports.append(check_job_output(card, source=card)))
        checking.start()
        checking.join(timeout=3)
        assert checking.is_alive() and not reports
    checking.join(timeout=120)
    assert len(reports) == 1


def test_the_setting_is_read_and_a_bad_one_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECKS_AT_ONCE_ENV, "3")
    assert checks_at_once() == 3
    monkeypatch.setenv(CHECKS_AT_ONCE_ENV, "0")
    assert checks_at_once() == 1
    monkeypatch.setenv(CHECKS_AT_ONCE_ENV, "many")
    with pytest.raises(ValueError, match=CHECKS_AT_ONCE_ENV):
        checks_at_once()
    monkeypatch.delenv(CHECKS_AT_ONCE_ENV)
    assert checks_at_once() == len(os.sched_getaffinity(0))
