"""The one atomic writer: whole files or none, every byte, fsync before rename, the umask's mode."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_lipsync import files
from prefect_lipsync.files import (
    atomic_path,
    atomic_writer,
    write_bytes_atomic,
    write_chunks_atomic,
    write_text_atomic,
)


def leftovers(folder: Path, target: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != target)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_text_bytes_and_chunks_land_whole(tmp_path: Path) -> None:
    assert write_text_atomic(tmp_path / "a.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    chunks = (bytes([i]) * 1000 for i in range(50))
    assert write_chunks_atomic(tmp_path / "deep" / "c.bin", chunks).stat().st_size == 50_000
    assert leftovers(tmp_path, "a.txt") == ["b.bin", "deep"]
    assert leftovers(tmp_path / "deep", "c.bin") == []


def test_every_byte_is_written_when_os_write_is_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls = []

    def short_write(fd: int, data: bytes | memoryview) -> int:  # a full pipe, a signal: 3 bytes at most
        calls.append(len(data))
        return real_write(fd, bytes(data[:3]))

    monkeypatch.setattr(files.os, "write", short_write)
    data = bytes(range(256)) * 4
    write_bytes_atomic(tmp_path / "x.bin", data)
    assert (tmp_path / "x.bin").read_bytes() == data
    assert len(calls) > 300  # the loop went on after each short write


def test_fsync_comes_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(files.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_text_atomic(tmp_path / "r.json", "{}")
    assert events.index("fsync") < events.index("replace")


def test_a_failure_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def chunks() -> Iterator[bytes]:
        yield b"new, but "
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError):
        write_chunks_atomic(target, chunks())
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, "out.bin") == []
    with pytest.raises(KeyboardInterrupt), atomic_writer(target) as out:
        out.write(b"partial")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, "out.bin") == []


def test_a_new_file_gets_the_umask_mode_not_0600(tmp_path: Path, umask: None) -> None:
    write_text_atomic(tmp_path / "report.json", "{}")
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644
    with atomic_path(tmp_path / "pic.png") as tmp:
        tmp.write_bytes(b"png")
    assert stat.S_IMODE((tmp_path / "pic.png").stat().st_mode) == 0o644
    os.umask(0o077)
    write_text_atomic(tmp_path / "private.json", "{}")
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def test_concurrent_writers_use_unique_temp_names(tmp_path: Path) -> None:
    target = tmp_path / "shared.txt"
    errors: list[BaseException] = []
    inside = threading.Barrier(8)

    def writer(i: int) -> None:
        try:
            with atomic_writer(target) as out:
                inside.wait(timeout=5)  # all eight temp files exist at once
                out.write(f"writer {i}\n".encode() * 1000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    text = target.read_text()
    assert len(set(text.splitlines())) == 1 and len(text.splitlines()) == 1000
    assert leftovers(tmp_path, "shared.txt") == []


def test_atomic_path_keeps_the_extension_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "clip.wav"
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        assert tmp.suffix == ".wav" and tmp.parent == tmp_path and tmp.exists()
        tmp.write_bytes(b"half")
        raise ValueError("the tool failed")
    assert not target.exists() and leftovers(tmp_path, "clip.wav") == []
