"""probe_many(): parallel probing equals one-by-one probing, and every bad file is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_testkit import MediaSet, ProcessLog

from prefect_lipsync.media import MediaError
from prefect_lipsync.media.probe import MediaNotFound, NotAFile, NotMediaFile, ProbeErrors, probe, probe_many


def test_parallel_result_equals_sequential_probes(media: MediaSet) -> None:
    paths = [str(p) for p in media.good]
    parallel = probe_many(paths, cache=None, max_workers=4)
    sequential = {p: probe(p, cache=None) for p in paths}
    assert parallel == sequential
    assert list(parallel) == paths  # keyed and ordered as given


def test_keys_are_the_paths_as_given_and_duplicates_probe_once(
    media: MediaSet, process_log: ProcessLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(media.root)
    relative = media.wav.name
    result = probe_many([relative, media.wav, relative], cache=None)
    assert list(result) == [relative, str(media.wav)]
    assert result[relative].path == relative
    assert len(process_log.runs("ffprobe")) == 2  # the repeated string is probed once


def test_every_bad_file_is_listed_in_one_error_after_all_probes_ran(media: MediaSet, tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    paths = [media.videos["25"], missing, media.text_as_mp4, tmp_path, media.truncated, media.wav]
    with pytest.raises(ProbeErrors) as caught:
        probe_many(paths, cache=None)
    err = caught.value
    assert isinstance(err, MediaError)
    assert {type(e) for e in err.errors.values()} == {MediaNotFound, NotMediaFile, NotAFile}
    assert list(err.errors) == [str(missing), str(media.text_as_mp4), str(tmp_path), str(media.truncated)]
    assert list(err.results) == [str(media.videos["25"]), str(media.wav)]
    message = str(err)
    assert message.startswith("4 of 6 files could not be probed:")
    for bad in err.errors:
        assert bad in message


def test_return_errors_maps_bad_paths_to_their_error(media: MediaSet, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.wav")
    result = probe_many([str(media.wav), missing], cache=None, return_errors=True)
    assert result[str(media.wav)] == probe(media.wav, cache=None)
    assert isinstance(result[missing], MediaNotFound)


def test_good_files_are_cached_even_when_others_fail(
    media: MediaSet, tmp_path: Path, process_log: ProcessLog
) -> None:
    with pytest.raises(ProbeErrors):
        probe_many([media.wav, tmp_path / "missing.wav"])
    process_log.clear()
    assert probe_many([media.wav])[str(media.wav)].duration == pytest.approx(1.5)
    assert process_log.runs("ffprobe") == []


def test_empty_input_gives_empty_result() -> None:
    assert probe_many([]) == {}
