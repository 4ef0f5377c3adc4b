"""The media cache against Moto's S3 server: content-addressed, bounded, atomic, and free of secrets."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from infra import TEST_AWS_KEY_ID, TEST_AWS_SECRET

from prefect_lipsync.storage import (
    CacheTooSmall,
    MediaCache,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    is_remote,
    presign_get,
    s3_filesystem,
)
from prefect_lipsync.storage.refs import display_ref


def put_bytes(ref: str, data: bytes) -> str:
    s3_filesystem().pipe_file(ref, data)
    return ref


def cache_tree_text(root: Path) -> str:
    """Every name and every small file's text under the cache: where a leaked secret would show."""
    parts = []
    for path in root.rglob("*"):
        parts.append(str(path))
        if path.is_file() and path.stat().st_size < 4096:
            parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_is_remote_knows_s3_and_http_refs_from_local_paths() -> None:
    assert is_remote("s3://bucket/a.mp4")
    assert is_remote("https://cdn.example/a.mp4?X-Amz-Signature=abc")
    assert not is_remote("/data/a.mp4")
    assert not is_remote("a.mp4")
    assert not is_remote("file:///data/a.mp4")
    assert not is_remote("s3:///no-bucket")


def test_an_s3_object_is_downloaded_once_and_then_served_locally(cache: MediaCache, bucket: str) -> None:
    ref = put_bytes(f"s3://{bucket}/media/clip.wav", b"RIFF" + os.urandom(5000))
    first = cache.materialize(ref)
    assert first.read_bytes() == s3_filesystem().cat_file(ref)
    assert first.suffix == ".wav"  # ffmpeg may guess the format by its name
    inode = first.stat().st_ino
    again = cache.materialize(ref)
    assert again == first and again.stat().st_ino == inode  # no second download (a rename gives a new inode)
    assert len(cache.entries()) == 1


def test_a_replaced_object_gets_a_new_entry_never_the_stale_copy(cache: MediaCache, bucket: str) -> None:
    ref = put_bytes(f"s3://{bucket}/clip.bin", b"old content")
    old = cache.materialize(ref)
    put_bytes(ref, b"new content, longer")
    new = cache.materialize(ref)
    assert new != old
    assert new.read_bytes() == b"new content, longer"


def test_the_cache_stays_within_its_byte_bound_evicting_least_recently_used(
    tmp_path: Path, bucket: str
) -> None:
    size = 100_000
    cache = MediaCache(tmp_path / "c", max_bytes=int(3.5 * size))
    refs = [put_bytes(f"s3://{bucket}/o{i}.bin", os.urandom(size)) for i in range(6)]
    kept_first = cache.materialize(refs[0])
    for i, ref in enumerate(refs[1:], start=1):
        path = cache.materialize(ref)
        assert path.exists()
        assert cache.total_bytes() <= cache.max_bytes
        if i % 2 == 0:
            os.utime(kept_first, (1e10, 0))  # used again just now (a later access than any other entry)
            assert cache.materialize(refs[0]) == kept_first
    names = {e.path.name.split(".")[0] for e in cache.entries()}
    assert len(names) == 3
    assert kept_first.exists(), "the entry used most often was evicted"
    assert not (tmp_path / "c" / "tmp").exists() or not any((tmp_path / "c" / "tmp").iterdir())


def test_an_object_larger_than_the_whole_cache_is_refused_with_the_setting_to_raise(
    tmp_path: Path, bucket: str
) -> None:
    cache = MediaCache(tmp_path / "c", max_bytes=1000)
    ref = put_bytes(f"s3://{bucket}/big.bin", os.urandom(5000))
    with pytest.raises(CacheTooSmall) as err:
        cache.materialize(ref)
    assert "PREFECT_LIPSYNC_MEDIA_CACHE_BYTES" in str(err.value)
    assert f"s3://{bucket}/big.bin" in str(err.value)
    assert cache.total_bytes() == 0


def test_an_interrupted_download_leaves_no_entry(tmp_path: Path, bucket: str) -> None:
    cache = MediaCache(tmp_path / "c", deadline_s=0.0)  # the deadline passes after the first chunk
    ref = put_bytes(f"s3://{bucket}/slow.bin", os.urandom(3 << 20))
    with pytest.raises(StorageUnavailable, match="longer than"):
        cache.materialize(ref)
    assert cache.entries() == []
    assert cache.total_bytes() == 0  # the temp file went too


def test_a_missing_object_names_the_ref_and_the_fix(cache: MediaCache, bucket: str) -> None:
    with pytest.raises(ObjectNotFound) as err:
        cache.materialize(f"s3://{bucket}/nope.mp4")
    assert f"s3://{bucket}/nope.mp4" in str(err.value)
    assert "check the s3:// path" in str(err.value)
    with pytest.raises(StorageError, match="not a remote reference"):
        cache.materialize("/local/file.mp4")


def test_presigned_urls_share_one_entry_and_no_secret_reaches_keys_or_files(
    cache: MediaCache, bucket: str
) -> None:
    ref = put_bytes(f"s3://{bucket}/dub/es.wav", os.urandom(20_000))
    url_a = presign_get(ref, expires_s=600)
    url_b = presign_get(ref, expires_s=1200)
    assert url_a != url_b and "?" in url_a
    signature = httpx.URL(url_a).params.get("Signature") or httpx.URL(url_a).params.get("X-Amz-Signature")
    assert signature

    from_url = cache.materialize(url_a)
    assert from_url.read_bytes() == s3_filesystem().cat_file(ref)
    assert cache.materialize(url_b) == from_url  # the query string is no part of the key
    key = cache.key_for(url_a)
    assert key == cache.key_for(url_b)
    s3_key = cache.key_for(ref)
    for secret in (TEST_AWS_SECRET, TEST_AWS_KEY_ID, signature):
        for text in (key, s3_key, cache_tree_text(cache.root)):
            assert secret not in text
    assert display_ref(url_a).endswith("/dub/es.wav") and "?" not in display_ref(url_a)


def test_a_presigned_url_to_a_missing_object_says_404_without_its_signature(
    cache: MediaCache, bucket: str
) -> None:
    url = presign_get(f"s3://{bucket}/gone.wav", expires_s=600)  # signing needs no object
    with pytest.raises(ObjectNotFound) as err:
        cache.materialize(url)
    assert "404" in str(err.value) and f"/{bucket}/gone.wav" in str(err.value)
    assert "Signature" not in str(err.value) and "?" not in str(err.value)
