"""What a person sees in the terminal: `prefect-lipsync run` with a bad manifest says what `plan` says,
once and fast, before any Prefect machinery; a normal offline run (the demo) prints no ERROR and no
traceback (no events lost to a stopped events worker, no heartbeat errors)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("prefect-lipsync")

BAD_MANIFEST = """\
version: 1
video: media/source.mp4
name: promo
languages:
  es:
    lines:
      - {id: l001, start: 1.00, end: 3.52, audio: es/l001.wav}
      - {id: l002, start: 4.0, end: banana, audio: es/l002.wav}
"""
# A log line of level ERROR or CRITICAL in Prefect's console format, or any Python traceback.
ERROR_LINE = re.compile(r"\|\s*(ERROR|CRITICAL)\s*\||^Traceback|Traceback \(most recent call last\)", re.M)


@pytest.fixture(autouse=True)
def prefect_server() -> None:
    """Replaces the session harness of conftest.py: these commands run as a user's shell runs them."""
    return None


def clean_env(home: Path) -> dict[str, str]:
    """A newcomer's shell: no Prefect profile or API URL, no Runware key, a PREFECT_HOME of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("PREFECT_") and not k.startswith("PREFECT_LIPSYNC_"))
        and k not in {"RUNWARE_API_KEY", "RUNWARE_BASE_URL"}
    }
    return {**env, "PREFECT_HOME": str(home), "COLUMNS": "200"}


def test_run_with_a_bad_manifest_prints_the_planner_message_once_fast_and_starts_no_prefect(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(BAD_MANIFEST)
    home = tmp_path / "prefect-home"
    # "Fast" is the command's own CPU time (user + system), which other jobs on a busy machine do not
    # stretch as they stretch its wall time.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [str(CLI), "run", str(manifest), "--out", str(tmp_path / "out")],
        env=clean_env(home),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert elapsed < 3.0, f"took {elapsed:.1f} s of CPU:\n{output}"
    # The planner's message, once: file and line, language, script line, field, and the fix.
    assert output.count("cannot read 'banana' as a time") == 1, output
    assert f"{manifest}:8:" in output
    assert "field languages.es.lines[1].end" in output and "line l002" in output
    assert output.count("fix: write seconds") == 1
    assert "Traceback" not in output and "Flow run" not in output and "temporary server" not in output
    # No Prefect server (not even a temporary one) and no database were started for it.
    assert not home.exists(), sorted(str(p) for p in home.rglob("*"))
    assert not (tmp_path / "out").exists()  # nothing written either
    print(
        f"bad manifest refused in {elapsed:.2f} s of CPU, exit {done.returncode}, {len(output.splitlines())} lines"
    )


def test_run_with_a_language_the_manifest_lacks_is_refused_before_prefect(tmp_path: Path) -> None:
    from prefect_lipsync.demo import build_demo

    manifest = build_demo(tmp_path / "demo")
    home = tmp_path / "prefect-home"
    done = subprocess.run(
        [str(CLI), "run", str(manifest), "--language", "fr", "--out", str(tmp_path / "out")],
        env=clean_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "no language fr" in done.stderr, done.stderr
    assert "fix: pick --language from es, de" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not home.exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_offline_demo_prints_no_error_line_and_no_traceback(tmp_path: Path) -> None:
    """`make demo`, i.e. `python -m prefect_lipsync.demo`, in a newcomer's shell (temporary server)."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect_lipsync.demo", "--out", str(tmp_path / "demo-output")],
        env=clean_env(tmp_path / "prefect-home"),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = done.stdout + done.stderr
    (tmp_path / "demo.log").write_text(output)
    assert done.returncode == 0, output[-4000:]
    assert "Finished in state Completed()" in output
    assert "LOCAL EMULATOR" in output and "All outputs in" in output
    assert not ERROR_LINE.findall(output), output[-6000:]
    # The symptoms of a Prefect service stopped under a running flow (events and logs lost).
    for symptom in (
        "Still processing items",
        "Cannot put items in a stopped service",
        "Error emitting event",
    ):
        assert symptom not in output, output[-6000:]
