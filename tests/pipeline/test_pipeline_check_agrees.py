"""`prefect-lipsync check --plan` and the flow run the same checks on the same output and agree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_lipsync.flows.localize import localize_video

pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect_lipsync.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module", autouse=True)
def prefect_harness() -> object:
    from infra import using_run_test_server

    with using_run_test_server(server_startup_timeout=180):
        yield


async def test_check_cli_with_the_plan_gives_the_flows_verdict_and_checks_on_the_demo_outputs(
    demo_media: Path, tmp_path: Path, cache_dir: Path
) -> None:
    shutil.copytree(demo_media, tmp_path / "demo")
    manifest = tmp_path / "demo" / "manifest.yaml"
    result = await localize_video(
        manifest=str(manifest), out_dir=str(tmp_path / "out"), quality_policy="warn"
    )
    planned = cli("plan", str(manifest), "--json")
    assert planned.returncode == 0, planned.stderr
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(planned.stdout)
    assert all(job["face_box"] for job in json.loads(planned.stdout)["jobs"])  # the box the flow used
    for output in result.outputs:
        flow_report = json.loads(Path(output.report).read_text())
        checked = cli(
            "check",
            output.output,
            "--source",
            str(tmp_path / "demo" / "media" / "source.mp4"),
            "--plan",
            str(plan_file),
            "--language",
            output.language,
            "--emulator",
            "--json",
        )
        cli_report = json.loads(checked.stdout)
        assert cli_report["verdict"] == flow_report["verdict"] == output.verdict
        flow_checks = {c["name"]: c["status"] for c in flow_report["checks"] if c["name"] != "content_safety"}
        cli_checks = {c["name"]: c["status"] for c in cli_report["checks"] if c["name"] != "content_safety"}
        assert cli_checks == flow_checks
        assert cli_report["face"]["face_box"] == flow_report["face_box"] is not None
