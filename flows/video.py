"""`localize-video` (one manifest) and `lipsync-video` (one video with one track, speech or
segments): the flows a person starts from the UI, or a pipeline calls as a subflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow
from pydantic import BaseModel, Field

from prefect_lipsync.blocks.credentials import RunwareCredentials
from prefect_lipsync.blocks.settings import LipsyncSettings
from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.flows.manifest import LocalizeResult, localize_manifest
from prefect_lipsync.flows.options import QualityPolicy, RunOptions
from prefect_lipsync.flows.review import apply_quality_policy
from prefect_lipsync.pipeline import LanguageOutput
from prefect_lipsync.pipeline.destination import Destination

#: Names and language codes that become file names: no separators, no leading dot, no newline.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


@flow(name="localize-video", description="One manifest -> one lip-synced, checked video per language.")
async def localize_video(
    manifest: str,
    out_dir: str = "lipsync-output",
    languages: list[str] | None = None,
    credentials: RunwareCredentials | None = None,
    credentials_block: str | None = None,
    settings: LipsyncSettings | None = None,
    base_url: str | None = None,
    allow_emulator: bool = True,
    quality_policy: QualityPolicy = "fail",
    approval_timeout_s: int = 3600,
    rerun_nonce: str | None = None,
) -> LocalizeResult:
    """Plan, check, submit, wait for, download, check and deliver every language of one manifest.

    Args:
        manifest: Path of the manifest (YAML or JSON, version 1).
        out_dir: Folder (or `s3://bucket/prefix`) for the outputs; each manifest gets a sub-folder named after it.
        languages: Only these languages of the manifest (all when empty).
        credentials: Runware credentials; without them RUNWARE_API_KEY is used, else the local emulator.
        credentials_block: The name of a saved RunwareCredentials block, instead of `credentials`.
        settings: Shared defaults (output format, safety, concurrency, prices, quality thresholds).
        base_url: Another Runware endpoint, such as an emulator started with `prefect-lipsync emulator`.
        allow_emulator: Without any key, run on the local emulator (dub previews); false makes such a run fail.
        quality_policy: `fail` fails the run on a failed check, `warn` delivers and reports, `ask` holds
            failed outputs until a person approves (delivered) or rejects (kept in quarantine).
        approval_timeout_s: With `ask`: how long to wait for a decision before rejecting.
        rerun_nonce: Set to re-run (and pay for) jobs already done once; leave empty to resume instead.
    """
    options = RunOptions.of(locals())
    destination = Destination.of(out_dir)
    result = await localize_manifest(Path(manifest), destination, languages, options)
    return await apply_quality_policy(result, options, out_root=destination)


# --------------------------------------------------------------------------- one video


class SegmentInput(BaseModel):
    """One stretch of the video and the audio that plays there."""

    start: float = Field(ge=0, description="Start in the video, seconds.")
    end: float = Field(gt=0, description="End in the video, seconds.")
    audio: str = Field(description="Audio file (path or URL) for this stretch.")
    audio_start: float | None = Field(default=None, ge=0, description="Start within the audio file, seconds.")
    audio_end: float | None = Field(default=None, gt=0, description="End within the audio file, seconds.")


class SpeechInput(BaseModel):
    """Text the service speaks (TTS) over the whole video."""

    text: str = Field(min_length=1, max_length=5000, description="What to say.")
    voice: str = Field(default="auto", description="Voice identifier; `auto` lets the service choose.")


@flow(name="lipsync-video", description="One video with one audio track, speech, or a list of segments.")
async def lipsync_video(
    video: str,
    audio: str | None = None,
    speech: SpeechInput | None = None,
    segments: list[SegmentInput] | None = None,
    out_dir: str = "lipsync-output",
    name: Annotated[str, Field(pattern=SAFE_NAME)] = "lipsync",
    language: Annotated[str, Field(pattern=SAFE_NAME)] = "dub",
    sync_mode: Literal["bounce", "cut_off", "silence", "remap"] = "cut_off",
    credentials: RunwareCredentials | None = None,
    credentials_block: str | None = None,
    settings: LipsyncSettings | None = None,
    base_url: str | None = None,
    allow_emulator: bool = True,
    quality_policy: QualityPolicy = "fail",
    approval_timeout_s: int = 3600,
    rerun_nonce: str | None = None,
) -> LanguageOutput:
    """Lip-sync one video to exactly one of: an audio track, speech text, or a list of segments.

    Args:
        video: The source video (path or URL).
        audio: A dub track for the whole video.
        speech: Text for the service to speak over the whole video.
        segments: Stretches of the video, each with its own audio file.
        out_dir: Folder (or `s3://bucket/prefix`) for the output; it gets a sub-folder named `name`.
        name: Used in the output's file name: letters, digits, `.`, `_` and `-`.
        language: Used in the output's file name: letters, digits, `.`, `_` and `-`.
        sync_mode: What the service does when audio and video lengths differ.
        credentials: Runware credentials; without them RUNWARE_API_KEY is used, else the local emulator.
        credentials_block: The name of a saved RunwareCredentials block, instead of `credentials`.
        settings: Shared defaults (output format, safety, prices, quality thresholds).
        base_url: Another Runware endpoint, such as an emulator started with `prefect-lipsync emulator`.
        allow_emulator: Without any key, run on the local emulator (dub previews); false makes such a run fail.
        quality_policy: `fail` fails the run on a failed check, `warn` only reports, `ask` pauses for a person.
        approval_timeout_s: With `ask`: how long to wait for a decision before rejecting.
        rerun_nonce: Set to re-run (and pay for) a job already done once; leave empty to resume instead.
    """
    options = RunOptions.of(locals())
    given = [k for k, v in (("audio", audio), ("speech", speech), ("segments", segments)) if v]
    if len(given) != 1:
        raise ValueError(f"give exactly one of audio, speech, segments (got {', '.join(given) or 'none'})")
    out_root = Destination.of(out_dir)
    manifest = _write_single_manifest(
        out_root.child(name).local / f"{name}.manifest.yaml",
        video=video,
        name=name,
        language=language,
        sync_mode=sync_mode,
        audio=audio,
        speech=speech,
        segments=segments,
    )
    result = await localize_manifest(manifest, out_root, None, options)
    result = await apply_quality_policy(result, options, out_root=out_root)
    return result.outputs[0]


def _absolute(ref: str) -> str:
    return ref if "://" in ref else str(Path(ref).expanduser().resolve())


def _write_single_manifest(
    path: Path,
    *,
    video: str,
    name: str,
    language: str,
    sync_mode: str,
    audio: str | None,
    speech: SpeechInput | None,
    segments: list[SegmentInput] | None,
) -> Path:
    """The one-video request as a manifest (kept next to the output as a record of what ran)."""
    import yaml

    spec: dict[str, Any]
    if audio:
        spec = {"audio": _absolute(audio)}
    elif speech:
        spec = {"speech": speech.model_dump()}
    else:
        lines = []
        for i, seg in enumerate(segments or [], start=1):
            line: dict[str, Any] = {
                "id": f"s{i:03d}",
                "start": seg.start,
                "end": seg.end,
                "audio": _absolute(seg.audio),
            }
            if seg.audio_start is not None:
                line["audio_start"] = seg.audio_start
            if seg.audio_end is not None:
                line["audio_end"] = seg.audio_end
            lines.append(line)
        spec = {"lines": lines}
    document = {
        "version": 1,
        "name": name,
        "video": _absolute(video),
        "defaults": {"sync_mode": sync_mode},
        "languages": {language: spec},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return path
