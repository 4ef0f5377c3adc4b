"""Media on object storage: `s3://` and presigned `https://` refs, a bounded local cache, safe publishing.

Knows nothing of Prefect. S3 is reached through fsspec/s3fs, configured by the AWS_* environment
(AWS_ENDPOINT_URL_S3 for an S3-compatible service).
"""

from prefect_lipsync.storage.cache import MediaCache, default_media_cache, local_copies, materialize
from prefect_lipsync.storage.errors import (
    CacheTooSmall,
    ObjectChanged,
    ObjectNotFound,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)
from prefect_lipsync.storage.filesystem import s3_filesystem
from prefect_lipsync.storage.listing import (
    list_manifests,
    list_objects,
    presign_get,
    presign_put,
    presign_refs,
)
from prefect_lipsync.storage.publish import PublishFailed, publish_file
from prefect_lipsync.storage.refs import display_ref, is_http, is_remote, is_s3, join_s3, split_s3

__all__ = [
    "CacheTooSmall",
    "MediaCache",
    "ObjectChanged",
    "ObjectNotFound",
    "PublishFailed",
    "StorageAccessDenied",
    "StorageError",
    "StorageUnavailable",
    "default_media_cache",
    "display_ref",
    "is_http",
    "is_remote",
    "is_s3",
    "join_s3",
    "list_manifests",
    "list_objects",
    "local_copies",
    "materialize",
    "presign_get",
    "presign_put",
    "presign_refs",
    "publish_file",
    "s3_filesystem",
    "split_s3",
]
