"""The `prefect-lipsync emulator` command, many jobs at once, and the memory of a big upload."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

AUTH = {"Authorization": "Bearer k"}


def start_command(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start `prefect-lipsync emulator ARGS` (with `env` added to this environment) and read the base
    URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect_lipsync.cli", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
    if match is None:
        proc.kill()
        raise AssertionError(f"no URL printed: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, match.group(1)


def stop(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C, then the command's exit code (it stops in 0.3 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_ctrl_c_stops_the_command_started_by_a_parent_that_ignores_it() -> None:
    # A shell's `cmd &` and a pytest-xdist worker start children with SIGINT ignored; Python keeps that,
    # and the command never stopped (both Ctrl-C tests hung under xdist).
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect_lipsync.cli", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stdout is not None
    assert "listening on" in proc.stdout.readline()
    assert stop(proc) == 0


@pytest.mark.slow
def test_command_serves_until_ctrl_c_with_its_options(card: Path) -> None:
    proc, base_url = start_command(
        "--latency", "0", "--api-key", "k", "--price-per-second", "1", "--credits", "4"
    )
    try:
        with httpx.Client(timeout=30) as client:
            assert (
                client.post(base_url, json=[{"taskType": "getResponse", "taskUUID": "x"}]).status_code == 401
            )
            upload = {
                "taskType": "mediaStorage",
                "taskUUID": str(uuid.uuid4()),
                "operation": "upload",
                "media": base64.b64encode(card.read_bytes()).decode(),
            }
            video = client.post(base_url, json=[upload], headers=AUTH).json()["data"][0]["mediaUUID"]
            task: dict[str, Any] = {
                "taskType": "videoInference",
                "model": "sync:3@0",
                "inputs": {"video": video},
            }
            first = client.post(
                base_url,
                json=[{**task, "taskUUID": str(uuid.uuid4()), "speech": {"text": "a"}}],
                headers=AUTH,
            )
            second = client.post(
                base_url,
                json=[{**task, "taskUUID": str(uuid.uuid4()), "speech": {"text": "b"}}],
                headers=AUTH,
            )
            assert first.status_code == 200 and second.status_code == 402  # 3 s at $1/s each, $4 of credits
    finally:
        code = stop(proc)
    assert code == 0
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_sigterm_stops_the_command_and_removes_its_temporary_storage(tmp_path: Path, card: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    proc, base_url = start_command("--latency", "0", env={"TMPDIR": str(temp)})
    upload = {
        "taskType": "mediaStorage",
        "taskUUID": str(uuid.uuid4()),
        "operation": "upload",
        "media": base64.b64encode(card.read_bytes()).decode(),
    }
    assert httpx.post(base_url, json=[upload], headers=AUTH, timeout=30).status_code == 200
    [storage] = list(temp.glob("lipsync-emulator-*"))
    assert any(p.is_file() for p in storage.rglob("*"))  # the upload is kept there while it serves
    proc.terminate()  # SIGTERM, as a supervisor or `kill` stops it
    assert proc.wait(timeout=15) == 0
    assert not list(temp.glob("lipsync-emulator-*")), "the temporary storage was left behind"
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_command_refuses_a_bad_rate_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect_lipsync.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["emulator", "--drop-rate", "2"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "between 0 and 1" in err and "Traceback" not in err


@pytest.mark.slow
def test_hundreds_of_jobs_finish_at_their_latency_without_rendering(emulator: Any, card: Path) -> None:
    api = emulator(latency=1.0)
    video = api.upload(card)["mediaUUID"]
    uuids = [str(uuid.uuid4()) for _ in range(300)]
    started = time.monotonic()
    for chunk in range(0, len(uuids), 50):  # several tasks per POST, as the envelope allows
        tasks = [
            {
                "taskType": "videoInference",
                "taskUUID": u,
                "model": "sync:3@0",
                "inputs": {"video": video},
                "speech": {"text": u},
            }
            for u in uuids[chunk : chunk + 50]
        ]
        assert api.post(tasks).status_code == 200
    submitted = time.monotonic() - started
    time.sleep(1.05)  # the last POST was accepted just now
    body = api.poll(*uuids).json()
    assert [i["status"] for i in body["data"]] == ["success"] * 300
    stats = api.stats()
    assert stats["finished"] == 300 and stats["renders"] == 0
    assert submitted < 10, f"300 submits took {submitted:.1f} s"


def _peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


def _streamed_upload_body(size: int) -> Iterator[bytes]:
    """A mediaStorage body with `size` bytes of media, base64-encoded on the fly (3 MB at a time)."""
    yield (
        b'[{"taskType":"mediaStorage","taskUUID":"'
        + str(uuid.uuid4()).encode()
        + b'","operation":"upload","media":"'
    )
    block = os.urandom(3 * 1024 * 1024)
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        yield base64.b64encode(piece)
        sent += len(piece)
    yield b'"}]'


@pytest.mark.slow
def test_a_big_upload_does_not_sit_in_the_emulators_memory() -> None:
    size = 96 * 1024 * 1024  # 128 MB of base64 on the wire
    proc, base_url = start_command()
    try:
        with httpx.Client(timeout=120) as client:
            client.get(base_url.removesuffix("/v1") + "/_emulator/stats")
            before = _peak_rss_kb(proc.pid)
            answer = client.post(
                base_url,
                content=_streamed_upload_body(size),
                headers={**AUTH, "Content-Type": "application/json"},
            )
            assert answer.status_code == 200, answer.text
            after = _peak_rss_kb(proc.pid)
            stats = client.get(base_url.removesuffix("/v1") + "/_emulator/stats").json()
        assert stats["upload_bytes"] == size
        growth_mb = (after - before) / 1024
        assert growth_mb < 48, f"peak memory grew by {growth_mb:.0f} MB for a {size // 2**20} MB upload"
    finally:
        stop(proc)
