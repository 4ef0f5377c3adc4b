"""The persistent probe cache: hits run no ffprobe, a changed file is probed again, the file stays sound."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from media_testkit import MediaSet, ProcessLog

from prefect_lipsync.media.cache import FileKey, ProbeCache, default_cache_path, default_probe_cache
from prefect_lipsync.media.probe import probe, probe_many


@pytest.fixture
def copies(media: MediaSet, tmp_path: Path) -> list[Path]:
    """Private copies, so touching them does not disturb other tests."""
    out = []
    for i, src in enumerate(media.good[:6]):
        dst = tmp_path / f"copy{i}{src.suffix}"
        shutil.copy(src, dst)
        out.append(dst)
    return out


def test_cache_hit_runs_no_ffprobe_process(
    copies: list[Path], process_log: ProcessLog, tmp_path: Path
) -> None:
    cache_file = tmp_path / "c" / "probe.json"
    cold = probe_many(copies, cache=ProbeCache(cache_file))
    assert len(process_log.runs("ffprobe")) == len(copies)
    process_log.clear()
    warm = probe_many(copies, cache=ProbeCache(cache_file))  # a fresh instance: read from disk
    assert warm == cold
    assert process_log.runs() == []


def test_cache_survives_into_another_process(
    copies: list[Path], process_log: ProcessLog, tmp_path: Path
) -> None:
    cache_file = tmp_path / "c" / "probe.json"
    probe_many(copies, cache=ProbeCache(cache_file))
    process_log.clear()
    code = (
        "import sys; from prefect_lipsync.media.probe import probe_many; "
        "from prefect_lipsync.media.cache import ProbeCache; "
        "r = probe_many(sys.argv[2:], cache=ProbeCache(sys.argv[1])); print(len(r))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(cache_file), *map(str, copies)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == str(len(copies))
    assert process_log.runs() == []


def test_touched_file_is_probed_again(copies: list[Path], process_log: ProcessLog) -> None:
    probe_many(copies)
    process_log.clear()
    st = copies[0].stat()
    os.utime(copies[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    probe_many(copies)
    assert [line.split()[-1] for line in process_log.runs("ffprobe")] == [str(copies[0])]


def test_file_replaced_by_another_of_the_same_name_is_probed_again(
    media: MediaSet, copies: list[Path], process_log: ProcessLog
) -> None:
    target = copies[0]
    assert probe(target).video is not None
    shutil.copy(media.wav, target)  # new size, new mtime: now audio only
    info = probe(target)
    assert info.video is None and info.audio
    assert len(process_log.runs("ffprobe")) == 2


def test_hit_reports_the_path_as_given_this_time(
    copies: list[Path], monkeypatch: pytest.MonkeyPatch, process_log: ProcessLog
) -> None:
    probe(copies[0])
    monkeypatch.chdir(copies[0].parent)
    process_log.clear()
    assert probe(copies[0].name).path == copies[0].name
    assert process_log.runs() == []


def test_corrupt_cache_file_is_ignored_and_rebuilt(
    copies: list[Path], process_log: ProcessLog, tmp_path: Path
) -> None:
    cache_file = tmp_path / "c" / "probe.json"
    cache_file.parent.mkdir()
    cache_file.write_text('{"version": 1, "entries": {"trunc')
    result = probe_many(copies, cache=ProbeCache(cache_file))
    assert len(result) == len(copies)
    data = json.loads(cache_file.read_text())
    assert len(data["entries"]) == len(copies)
    process_log.clear()
    probe_many(copies, cache=ProbeCache(cache_file))
    assert process_log.runs() == []


def test_default_cache_lives_under_the_env_dir(copies: list[Path], _private_cache_dir: Path) -> None:
    probe(copies[0])
    assert default_cache_path() == _private_cache_dir / "probe.json"
    entries = json.loads(default_cache_path().read_text())["entries"]
    assert list(entries) == [os.path.realpath(copies[0])]
    assert len(default_probe_cache()) == 1


def test_no_cache_probes_every_time(
    copies: list[Path], process_log: ProcessLog, _private_cache_dir: Path
) -> None:
    probe(copies[0], cache=None)
    probe(copies[0], cache=None)
    assert len(process_log.runs("ffprobe")) == 2
    assert not _private_cache_dir.exists()


def test_two_processes_saving_at_once_leave_a_sound_file_with_both_sets(
    copies: list[Path], tmp_path: Path
) -> None:
    cache_file = tmp_path / "shared" / "probe.json"
    # Each writer saves many times (one probe per save) so the renames interleave.
    code = (
        "import sys; from prefect_lipsync.media.probe import probe; "
        "from prefect_lipsync.media.cache import ProbeCache; "
        "[probe(p, cache=ProbeCache(sys.argv[1])) for p in sys.argv[2:]]"
    )
    halves = [copies[:3], copies[3:]]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(cache_file), *map(str, half)]) for half in halves
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    entries = json.loads(cache_file.read_text())["entries"]  # parses: never a torn file
    # Each save merges what is on disk under a lock, so neither process loses the other's entries.
    assert sorted(entries) == sorted(os.path.realpath(p) for p in copies)
    assert not [p for p in cache_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_entry_for_a_file_version_is_none_after_the_file_changes(copies: list[Path], tmp_path: Path) -> None:
    cache = ProbeCache(tmp_path / "c.json")
    key = FileKey.of(copies[0])
    assert key is not None
    cache.put(key, probe(copies[0], cache=None))
    assert cache.get(key) is not None
    with copies[0].open("ab") as handle:
        handle.write(b"\0")
    new_key = FileKey.of(copies[0])
    assert new_key is not None and new_key != key
    assert cache.get(new_key) is None


def test_unwritable_cache_dir_only_warns(
    copies: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    info = probe(copies[0], cache=ProbeCache(blocker / "probe.json"))
    assert info.video is not None
    assert "could not save the probe cache" in caplog.text
