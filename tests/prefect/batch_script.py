"""A night's batch as a team's own script runs it: `python -c BATCH FOLDER OUT BASE_URL AT_ONCE`, in a
process of its own, printing `RESULT {json}` (completed, message, manifests done) as its last line."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

BATCH = textwrap.dedent(
    """
    import asyncio, json, sys
    from prefect_lipsync.flows.localize import localize_batch

    state = asyncio.run(localize_batch(folder=sys.argv[1], out_dir=sys.argv[2], pattern="*.yaml",
                                       max_concurrent_manifests=int(sys.argv[4]), base_url=sys.argv[3],
                                       quality_policy="warn", return_state=True))
    result = state.result(raise_on_failure=False) if state.is_completed() else None
    result = asyncio.run(result) if asyncio.iscoroutine(result) else result
    print("RESULT " + json.dumps({"completed": state.is_completed(), "message": str(state.message),
                                   "done": len(result.done) if result else 0}))
    """
)


def batch_command(inbox: Path, out: Path, base_url: str, at_once: int) -> list[str]:
    return [sys.executable, "-c", BATCH, str(inbox), str(out), base_url, str(at_once)]


def batch_outcome(stdout: str, stderr: str) -> dict[str, Any]:
    """The script's RESULT line; a run that printed none fails the test with its output's tail."""
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout[-3000:] + stderr[-5000:]
    return dict(json.loads(lines[-1][len("RESULT ") :]))
