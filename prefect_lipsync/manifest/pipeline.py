"""load -> probe -> plan in one call, for the CLI and the Prefect layer: every problem in one ManifestError."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect_lipsync.manifest.errors import ManifestError
from prefect_lipsync.manifest.loader import LoadedManifest, read_manifest
from prefect_lipsync.manifest.plan_models import DEFAULT_PRICE_PER_SECOND, Plan
from prefect_lipsync.manifest.planner import HashFn, plan_manifest
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.hashing import cached_file_sha256
from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.media.probe import DEFAULT_PROBE_TIMEOUT_S, ProbeErrors, probe_many

#: Probes every given path; a failing one maps to its MediaError (or all raise one ProbeErrors).
ProbeFn = Callable[[Sequence[str]], Mapping[str, MediaInfo | MediaError]]


def default_probe_fn(timeout: float = DEFAULT_PROBE_TIMEOUT_S) -> ProbeFn:
    """probe_many through the persistent probe cache, failures returned rather than raised."""

    def run(paths: Sequence[str]) -> Mapping[str, MediaInfo | MediaError]:
        return probe_many(paths, timeout=timeout, return_errors=True)

    return run


def load_and_plan(
    manifest_path: str | Path | LoadedManifest,
    *,
    probe_fn: ProbeFn | None = None,
    price_per_second: float = DEFAULT_PRICE_PER_SECOND,
    number_results: int = 1,
    hash_fn: HashFn | None = cached_file_sha256,
    audio_ops_dir: str | Path | None = None,
    request_options: Mapping[str, Any] | None = None,
) -> Plan:
    """Load a manifest, probe every file it names in one call, and plan it.

    Raises ManifestError listing every problem at once: syntax and schema, missing or unreadable
    media, subtitles, timing and speakers. A manifest whose schema fails is still probed and planned
    without its refused parts, so its timing problems are said in the same pass (nothing is probed
    when the YAML itself is broken). A manifest already loaded (and perhaps narrowed to some
    languages) is planned without being read again.
    """
    if isinstance(manifest_path, LoadedManifest):
        loaded = manifest_path
    else:
        read, problems = read_manifest(manifest_path)
        if read is None:
            raise ManifestError(problems)
        loaded = read
    refs = loaded.media_refs()
    probe = probe_fn or default_probe_fn()
    try:
        outcomes = dict(probe(refs))
    except ProbeErrors as exc:  # a probe_fn that raises (probe_many's default) still names every file
        outcomes = {**exc.results, **exc.errors}
    media = {ref: o for ref, o in outcomes.items() if isinstance(o, MediaInfo)}
    errors = {ref: o for ref, o in outcomes.items() if isinstance(o, MediaError)}
    return plan_manifest(
        loaded,
        media,
        media_errors=errors,
        price_per_second=price_per_second,
        number_results=number_results,
        hash_fn=hash_fn,
        audio_ops_dir=audio_ops_dir,
        request_options=request_options,
    )
