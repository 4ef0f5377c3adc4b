"""The README's code is tested as written: every ```python block runs (against the emulator, with the
offline demo's manifest), and the team setup points every `prefect` command at the team's server."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from infra import seed_prefect_home

from prefect_lipsync.demo import build_demo
from prefect_lipsync.emulator import run_emulator

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


def section(title: str) -> str:
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", README, flags=re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def run_in_own_group(
    command: list[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`command` in a process group of its own, ended with everything it started (Prefect's temporary
    server included) whatever happens: a block killed at its timeout once left that server running."""
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def test_python_blocks_are_valid_python() -> None:
    snippets = blocks("python")
    assert snippets, "README has no python block"
    for snippet in snippets:
        compile(snippet, "README.md", "exec")  # e.g. no `await` outside a function


@pytest.mark.slow
# About 60 s of CPU each (a temporary server, the demo's two renders and checks); block 1 once took
# more than 360 s of wall beside the other slow tests at load average 30: the minutes-long tests' 900 s.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs_as_written_against_the_emulator(index: int, tmp_path: Path) -> None:
    snippet = blocks("python")[index]
    build_demo(tmp_path)  # manifest.yaml and its media, where the snippet looks for them
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(snippet)
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("PREFECT_") and not k.startswith("PREFECT_LIPSYNC_")) and k != "RUNWARE_API_KEY"
    }
    with run_emulator() as base_url:
        done = run_in_own_group(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env={
                **env,
                "RUNWARE_BASE_URL": str(base_url),
                # No server configured, so Prefect starts a temporary one (its database migrated, as after
                # `make demo`; the first start on a new machine is tests/prefect/test_cli_output_clean.py's).
                "PREFECT_HOME": str(seed_prefect_home(tmp_path / "prefect-home")),
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "240",  # slow to start on a loaded machine
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
            },
            timeout=840,
        )
        accepted = base_url.stats()["accepted"]
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "Traceback" not in output
    assert accepted >= 1  # the jobs went to the emulator, not anywhere else
    if "localize_video" in snippet:
        for language in ("es", "de"):
            assert (tmp_path / "outputs" / "demo" / f"demo.{language}.mp4").stat().st_size > 10_000
            assert re.search(rf"^{language} (pass|warn) .*demo\.{language}\.mp4$", done.stdout, re.M), output


def test_team_setup_points_every_prefect_command_at_the_team_server() -> None:
    (setup,) = blocks_in(section("Running it for a team"))
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if line.split("#")[0].strip()]
    exports = [i for i, c in enumerate(commands) if c.startswith("export PREFECT_API_URL=")]
    assert exports, "the team setup never sets PREFECT_API_URL"
    url = commands[exports[0]].split("=", 1)[1]
    assert re.fullmatch(r"http://[\w.-]+:4200/api", url), url  # the default `prefect server start` address
    first_client = next(
        i for i, c in enumerate(commands) if c.startswith("prefect ") and "server start" not in c
    )
    assert exports[0] < first_client, "PREFECT_API_URL must be set before `prefect work-pool create`"


def blocks_in(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
