"""Media in S3 (Moto) through the real pipeline: probe, manifest load and plan, pre-flight decode."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from infra import TinyMedia

from prefect_lipsync.manifest import load_and_plan
from prefect_lipsync.manifest.errors import ManifestError
from prefect_lipsync.media.cache import FileKey, ProbeCache
from prefect_lipsync.media.probe import MediaNotFound, NotMediaFile, probe, probe_many
from prefect_lipsync.quality.preflight import preflight
from prefect_lipsync.storage import default_media_cache, local_copies, s3_filesystem


def upload(local: Path, ref: str) -> str:
    s3_filesystem().put_file(str(local), ref)
    return ref


@pytest.fixture
def s3_media(bucket: str, tiny_media: TinyMedia) -> dict[str, str]:
    return {
        "video": upload(tiny_media.video, f"s3://{bucket}/src/promo.mp4"),
        "dub": upload(tiny_media.dub, f"s3://{bucket}/dub/es.wav"),
        "line": upload(tiny_media.line, f"s3://{bucket}/dub/it/l1.wav"),
    }


def test_probe_many_reads_s3_media_through_the_cache_and_names_the_ref(s3_media: dict[str, str]) -> None:
    refs = [s3_media["video"], s3_media["dub"]]
    infos = probe_many(refs, cache=None)
    video = infos[s3_media["video"]]
    assert video.path == s3_media["video"]
    assert video.video is not None and video.video.fps == Fraction(25)
    assert (video.video.width, video.video.height) == (160, 90)
    assert abs(infos[s3_media["dub"]].duration - 2.0) < 0.05
    entries = default_media_cache().entries()
    assert len(entries) == 2  # both objects, once each
    inodes = {e.path.stat().st_ino for e in entries}
    probe(s3_media["video"])  # through the persistent probe cache this time
    assert {e.path.stat().st_ino for e in default_media_cache().entries()} == inodes  # no new download


def test_an_s3_source_used_by_many_jobs_is_probed_once(
    s3_media: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every job of a batch probes its manifest's video: the local copy must keep the identity the probe
    cache knows it by, or each use would run ffprobe again (and grow the cache by one entry a use)."""
    runs = tmp_path / "ffprobe-runs"
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("ffprobe")
    assert real is not None
    (shim / "ffprobe").write_text(f'#!/bin/sh\necho run >> "{runs}"\nexec "{real}" "$@"\n')
    (shim / "ffprobe").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    cache = ProbeCache(tmp_path / "probe.json")
    local = default_media_cache().materialize(s3_media["video"])
    identity = FileKey.of(local)
    for _ in range(3):
        assert probe(s3_media["video"], cache=cache).path == s3_media["video"]
    assert FileKey.of(local) == identity  # used three times, still the same file version
    assert len(cache) == 1
    assert runs.read_text().count("run") == 1
    # A new process (a fresh cache object over the same file) asks ffprobe nothing either.
    assert probe(s3_media["video"], cache=ProbeCache(tmp_path / "probe.json")).video is not None
    assert runs.read_text().count("run") == 1


def test_probe_errors_on_s3_refs_name_the_ref_not_the_cache_file(bucket: str) -> None:
    s3_filesystem().pipe_file(f"{bucket}/junk.mp4", b"this is not a video" * 50)
    outcomes = probe_many([f"s3://{bucket}/junk.mp4", f"s3://{bucket}/missing.mp4"], return_errors=True)
    junk, missing = outcomes[f"s3://{bucket}/junk.mp4"], outcomes[f"s3://{bucket}/missing.mp4"]
    assert isinstance(junk, NotMediaFile) and junk.path == f"s3://{bucket}/junk.mp4"
    assert isinstance(missing, MediaNotFound) and str(missing).startswith(f"s3://{bucket}/missing.mp4: ")


def write_manifest(tmp_path: Path, s3_media: dict[str, str], video: str | None = None) -> Path:
    path = tmp_path / "promo.yaml"
    path.write_text(
        f"""version: 1
name: promo
video: {video or s3_media["video"]}
languages:
  es:
    audio: {s3_media["dub"]}
  it:
    lines:
      - {{id: l1, start: 0.4, end: 1.4, audio: {s3_media["line"]}}}
""",
        encoding="utf-8",
    )
    return path


def test_a_manifest_naming_s3_video_and_audio_loads_and_plans(
    tmp_path: Path, s3_media: dict[str, str]
) -> None:
    plan = load_and_plan(write_manifest(tmp_path, s3_media))
    jobs = {job.language: job for job in plan.jobs}
    assert set(jobs) == {"es", "it"}
    es, it = jobs["es"].request, jobs["it"].request
    assert es.inputs.video == s3_media["video"] and es.inputs.audio == s3_media["dub"]
    assert es.object_refs() == [s3_media["video"], s3_media["dub"]]
    assert it.settings is not None and it.settings.segments
    assert [seg.audio for seg in it.settings.segments] == [s3_media["line"]]
    assert jobs["es"].output_name == "promo.es.mp4"
    assert plan.estimated_seconds == pytest.approx(4.0, abs=0.1)  # 2 s of video, two languages


def test_a_missing_s3_video_is_a_manifest_problem_on_its_line(
    tmp_path: Path, s3_media: dict[str, str]
) -> None:
    missing = s3_media["video"].replace("promo.mp4", "nope.mp4")
    with pytest.raises(ManifestError) as err:
        load_and_plan(write_manifest(tmp_path, s3_media, video=missing))
    problem = next(p for p in err.value.problems if p.field == "video")
    assert problem.line == 3
    assert "no such bucket or key" in problem.message


def test_preflight_decodes_s3_media_from_local_copies(tmp_path: Path, s3_media: dict[str, str]) -> None:
    plan = load_and_plan(write_manifest(tmp_path, s3_media))
    for job in plan.jobs:
        local = local_copies(job.request.object_refs())
        assert set(local) == set(job.request.object_refs())
        report = preflight(job.request.to_wire(), local_media=local, expected_fps=Fraction(25))
        by_name = {c.name: c for c in report.checks}
        assert by_name["source_decodes"].status == "pass", report
        assert report.verdict != "fail", report
