"""Where a run's outputs land: a local folder, or an `s3://bucket/prefix` written through a local one.

A local folder is written in place (staging, then a rename). For object storage the runner does the
same in a local working folder (the outbox, in the cache folder), and each finished file is then
published to the same relative key: pictures and reports first, the video last, each only once it
is complete, so a final key only ever holds a complete, checked file. The local copy of a published
video is removed; reports and pictures (small) stay for the run's artifacts.

    out_dir = s3://team-bucket/dubs/promo
    outbox/<digest>/promo.es.mp4     settled here   -> s3://team-bucket/dubs/promo/promo.es.mp4
    outbox/<digest>/quarantine/...   settled here   -> s3://team-bucket/dubs/promo/quarantine/...
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prefect_lipsync.files import default_cache_dir, write_text_atomic
from prefect_lipsync.storage.errors import ObjectNotFound, StorageError
from prefect_lipsync.storage.refs import display_ref, is_http, is_s3, join_s3

OUTBOX_DIR = "outbox"
STAGING_PREFIX = ".staging"
#: How long a result the service PUT into the bucket (uploadEndpoint) may take to appear there after
#: the service reported it done, before the runner downloads it from the result URL instead.
STORED_RESULT_WAIT_S = 120.0


@dataclass(frozen=True)
class Destination:
    """A local folder (`remote` None), or an S3 prefix and the local working folder mirrored to it."""

    local: Path
    remote: str | None = None

    @classmethod
    def of(cls, out_dir: str | Path) -> Destination:
        """`s3://bucket/prefix` or a local folder (made absolute); an http(s) URL is refused."""
        text = str(out_dir)
        if is_s3(text):
            remote = text.rstrip("/")
            digest = hashlib.sha256(remote.encode()).hexdigest()[:16]
            return cls(local=default_cache_dir() / OUTBOX_DIR / digest, remote=remote)
        if is_http(text):
            raise StorageError(
                display_ref(text),
                "outputs cannot be written to an http(s) URL",
                "give s3://bucket/prefix or a folder",
            )
        return cls(local=Path(text).expanduser().resolve())

    def child(self, name: str) -> Destination:
        """The destination of one manifest's outputs, in a sub-folder (sub-prefix) named `name`."""
        return Destination(self.local / name, join_s3(self.remote, name) if self.remote else None)

    @property
    def where(self) -> str:
        """What a person is told, and what identifies this destination (a journal's delivery key)."""
        return self.remote or str(self.local)

    def ref(self, local_path: Path) -> str:
        """The final reference of a file settled at `local_path` (itself, for a local folder)."""
        if self.remote is None:
            return str(local_path)
        return join_s3(self.remote, local_path.relative_to(self.local).as_posix())

    def local_of(self, ref: str) -> Path:
        """The local working file of a final reference (`ref` inverted)."""
        if self.remote is None:
            return Path(ref)
        prefix = self.remote + "/"
        if not ref.startswith(prefix):
            raise ValueError(f"{display_ref(ref)} is not under {self.remote}")
        return self.local / ref[len(prefix) :]

    def drop_quarantined(self, video_ref: str, pictures: Sequence[str]) -> None:
        """Remove the published copies of a quarantined output released by a reviewer (local ones moved)."""
        if self.remote is None:
            return
        remove_objects([video_ref, f"{video_ref}.report.json", f"{video_ref}.quarantine.json", *pictures])

    def publish(self, files: Sequence[Path], *, keep_local: bool = True) -> list[str]:
        """Send settled files to their final keys, in the order given (the one that means done, last).

        Returns their final references. A local folder needs nothing: the files are already there.
        """
        if self.remote is None:
            return [str(f) for f in files]
        from prefect_lipsync.storage.publish import publish_file

        refs = []
        for path in files:
            refs.append(publish_file(path, self.ref(path), content_type=_content_type(path)))
            if not keep_local:
                path.unlink(missing_ok=True)
        return refs

    def staging_ref(self, name: str) -> str:
        """Where the service may PUT a result itself (uploadEndpoint): under `.staging/`, never final."""
        assert self.remote is not None, "only object storage has a staging prefix"
        return join_s3(self.remote, STAGING_PREFIX, name)

    def fetch_stored_result(self, staged: str, dest: Path, *, wait_s: float = STORED_RESULT_WAIT_S) -> bool:
        """Copy the result the service PUT at `staged` to the local file `dest`, waiting for it to appear.

        An S3 object is visible only once its upload completed, so a visible object is whole.
        False when it did not appear in time (the caller downloads from the result URL instead).
        """
        from prefect_lipsync.storage.filesystem import s3_filesystem, storage_errors

        fs = s3_filesystem()
        deadline = time.monotonic() + wait_s
        while True:
            with storage_errors(staged, "look for the stored result"):
                if fs.exists(staged):
                    break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)
            fs.invalidate_cache(staged)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        os.close(fd)
        try:
            with storage_errors(staged, "download the stored result"):
                fs.get_file(staged, tmp)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    def promote_stored(self, staged: str, local_video: Path) -> str:
        """The checked video's final key, copied inside the bucket from where the service stored it.

        The copy's size is read back against the checked local file; the staged object and the local
        copy are removed after. Returns the final reference.
        """
        from prefect_lipsync.storage.filesystem import s3_filesystem, storage_errors
        from prefect_lipsync.storage.publish import PublishFailed

        fs = s3_filesystem()
        final = self.ref(local_video)
        size = local_video.stat().st_size
        with storage_errors(final, "copy the stored result to its final key"):
            fs.copy(staged, final)
            landed = int(fs.info(final).get("size", -1))
        if landed != size:
            with storage_errors(final, "remove the incomplete object"):
                fs.rm_file(final)
            raise PublishFailed(final, f"the copied object has {landed} bytes, not {size}", "run again")
        with storage_errors(staged, "remove the staged result"):
            fs.rm_file(staged)
        local_video.unlink(missing_ok=True)
        return final

    def write_text(self, relative: str, text: str) -> str:
        """A small file (result.json, a done marker) written whole, here and at its final key."""
        local = write_text_atomic(self.local / relative, text)
        return self.publish([local])[0]

    def read_text(self, relative: str) -> str | None:
        """A small file written by `write_text` (None when there is none)."""
        if self.remote is None:
            try:
                return (self.local / relative).read_text(encoding="utf-8")
            except OSError:
                return None
        return read_ref_text(join_s3(self.remote, relative), missing_ok=True)


def remove_objects(refs: Sequence[str]) -> None:
    """Delete these S3 objects; one already gone is no error."""
    from prefect_lipsync.storage.filesystem import s3_filesystem, storage_errors

    fs = s3_filesystem()
    for ref in refs:
        with storage_errors(ref, "remove the object"):
            if fs.exists(ref):
                fs.rm_file(ref)


def ref_exists(ref: str) -> bool:
    """Whether the file or object a reference names is there."""
    if is_s3(ref):
        from prefect_lipsync.storage.filesystem import s3_filesystem, storage_errors

        with storage_errors(ref, "look for the object"):
            return bool(s3_filesystem().exists(ref))
    return Path(ref).exists()


def read_ref_bytes(ref: str) -> bytes:
    """The content of a local file or an S3 object (small ones: reports, pictures)."""
    if is_s3(ref):
        from prefect_lipsync.storage.filesystem import s3_filesystem, storage_errors

        with storage_errors(ref, "read the object"):
            return bytes(s3_filesystem().cat_file(ref))
    return Path(ref).read_bytes()


def read_ref_text(ref: str, *, missing_ok: bool = False) -> str | None:
    try:
        return read_ref_bytes(ref).decode("utf-8")
    except (FileNotFoundError, ObjectNotFound):
        if missing_ok:
            return None
        raise


def _content_type(path: Path) -> str | None:
    return {
        ".mp4": "video/mp4",
        ".mov": "video/quicktime",
        ".webm": "video/webm",
        ".json": "application/json",
        ".png": "image/png",
    }.get(path.suffix.lower())
