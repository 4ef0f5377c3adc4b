"""Publishing to S3 (Moto): a final key only ever holds a complete, checked file; listing; presigned PUT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from prefect_lipsync.storage import (
    StorageError,
    list_manifests,
    list_objects,
    presign_put,
    presign_refs,
    publish_file,
    s3_filesystem,
)
from prefect_lipsync.storage.refs import join_s3

PART = 5 << 20


class CheckFailed(Exception):
    pass


def exists(ref: str) -> bool:
    return bool(s3_filesystem().exists(ref))


def open_multipart_uploads(bucket: str) -> list[dict[str, object]]:
    fs = s3_filesystem()
    answer = fs.call_s3("list_multipart_uploads", Bucket=bucket)
    return list(answer.get("Uploads", []))


def test_a_checked_file_lands_whole_under_its_final_key(tmp_path: Path, bucket: str) -> None:
    local = tmp_path / "promo.es.mp4"
    local.write_bytes(os.urandom(50_000))
    seen: list[Path] = []
    dest = publish_file(local, f"s3://{bucket}/out/promo.es.mp4", check=seen.append, content_type="video/mp4")
    assert seen == [local]
    assert s3_filesystem().cat_file(dest) == local.read_bytes()
    assert s3_filesystem().info(dest)["ContentType"] == "video/mp4"


def test_a_file_failing_its_check_is_never_written(tmp_path: Path, bucket: str) -> None:
    local = tmp_path / "bad.mp4"
    local.write_bytes(b"broken")

    def reject(_path: Path) -> None:
        raise CheckFailed("audio drifts by 0.4 s")

    dest = f"s3://{bucket}/out/bad.mp4"
    with pytest.raises(CheckFailed):
        publish_file(local, dest, check=reject)
    assert not exists(dest)
    with pytest.raises(CheckFailed):
        publish_file(local, str(tmp_path / "final" / "bad.mp4"), check=reject)
    assert not (tmp_path / "final").exists()


def test_a_multipart_publish_failing_after_its_first_part_leaves_no_key_and_no_open_upload(
    tmp_path: Path, bucket: str
) -> None:
    local = tmp_path / "long.mp4"
    local.write_bytes(os.urandom(3 * PART))
    sent: list[int] = []

    def interrupt(done: int) -> None:
        sent.append(done)
        raise ConnectionResetError("link dropped")

    dest = f"s3://{bucket}/out/long.mp4"
    with pytest.raises(StorageError, match="did not answer"):
        publish_file(local, dest, part_bytes=PART, progress=interrupt)
    assert sent and sent[0] < local.stat().st_size  # it was stopped part-way
    assert not exists(dest)
    assert open_multipart_uploads(bucket) == []  # s3fs aborted it: no parts left to pay for


@pytest.mark.slow
def test_a_publisher_killed_mid_upload_leaves_no_final_key(tmp_path: Path, bucket: str) -> None:
    local = tmp_path / "long.mp4"
    local.write_bytes(os.urandom(3 * PART))
    dest = f"s3://{bucket}/out/killed.mp4"
    script = textwrap.dedent(
        f"""
        import sys, time
        from prefect_lipsync.storage import publish_file

        def progress(done):
            print("part", done, flush=True)
            time.sleep(30)  # hold here until the test kills this process

        publish_file({str(local)!r}, {dest!r}, part_bytes={PART}, progress=progress)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("part ") and int(line.split()[1]) > 0, line
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not exists(dest)
    assert len(open_multipart_uploads(bucket)) == 1  # invisible; a bucket lifecycle rule expires it


def test_publishing_to_a_local_folder_is_an_atomic_rename(tmp_path: Path) -> None:
    local = tmp_path / "a.mp4"
    local.write_bytes(b"x" * 1000)
    dest = tmp_path / "deliver" / "a.mp4"
    assert publish_file(local, str(dest)) == str(dest)
    assert dest.read_bytes() == local.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["a.mp4"]  # no temp file left beside it


def test_publish_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a file"):
        publish_file(tmp_path / "missing.mp4", "s3://b/x.mp4")
    (tmp_path / "a.mp4").write_bytes(b"x")
    with pytest.raises(StorageError, match="http"):
        publish_file(tmp_path / "a.mp4", "https://example.invalid/x.mp4")


def test_manifests_under_a_prefix_are_listed_sorted(bucket: str) -> None:
    fs = s3_filesystem()
    for key in (
        "nightly/b.yaml",
        "nightly/a.json",
        "nightly/sub/c.yml",
        "nightly/media/v.mp4",
        "other/d.yaml",
    ):
        fs.pipe_file(f"{bucket}/{key}", b"version: 1\n")
    prefix = f"s3://{bucket}/nightly"
    assert list_manifests(prefix) == [
        f"s3://{bucket}/nightly/a.json",
        f"s3://{bucket}/nightly/b.yaml",
        f"s3://{bucket}/nightly/sub/c.yml",
    ]
    assert f"s3://{bucket}/nightly/media/v.mp4" in list_objects(prefix)
    assert join_s3(prefix, "out", "a.es.mp4") == f"s3://{bucket}/nightly/out/a.es.mp4"


def test_a_presigned_put_url_lets_a_plain_http_client_deliver_an_output(bucket: str) -> None:
    dest = f"s3://{bucket}/out/from-service.mp4"
    url = presign_put(dest, expires_s=300, content_type="video/mp4")
    assert url.startswith("http") and "?" in url
    answer = httpx.put(url, content=b"rendered video", headers={"Content-Type": "video/mp4"}, timeout=10)
    assert answer.status_code == 200
    assert s3_filesystem().cat_file(dest) == b"rendered video"
    with pytest.raises(StorageError, match="expires_s"):
        presign_put(dest, expires_s=0)


def test_presigned_get_urls_let_a_plain_http_client_read_the_s3_refs_of_a_request(bucket: str) -> None:
    video = f"s3://{bucket}/src/v.mp4"
    s3_filesystem().pipe_file(video, b"video bytes")
    urls = presign_refs([video, video, "https://cdn.example/a.wav", "/local/b.wav"], expires_s=300)
    assert list(urls) == [video]
    assert httpx.get(urls[video], timeout=10).content == b"video bytes"
