"""`manifest import`: an SRT or WebVTT file as a manifest of lines (times exact to the millisecond)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prefect_lipsync.files import write_text_atomic
from prefect_lipsync.manifest.loader import is_url
from prefect_lipsync.manifest.schema import template_problem
from prefect_lipsync.manifest.subtitle_speakers import ALL_SPEAKER_RULES, SpeakerRule
from prefect_lipsync.manifest.subtitles import SubtitleError, SubtitleFile, fill_template, read_subtitle_file
from prefect_lipsync.manifest.timecode import format_seconds

_CODE_RE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")


def guess_language(subtitle_path: str | Path) -> str:
    """'promo.it.srt' or 'it.vtt' -> 'it'; 'und' (undetermined) when the name holds no code."""
    for part in reversed(Path(subtitle_path).stem.split(".")):
        if _CODE_RE.match(part):
            return part
    return "und"


def _ref_for(target: str, manifest_dir: Path) -> str:
    """A path as the manifest should hold it: relative to the manifest's folder (URLs unchanged)."""
    if is_url(target):
        return target
    return os.path.relpath(os.path.abspath(target), manifest_dir).replace(os.sep, "/")


@dataclass(frozen=True)
class SubtitleImport:
    """A manifest made from a subtitle file, and how the file was read (its cue notes)."""

    data: dict[str, Any]
    subtitles: SubtitleFile

    def report(self, source: str) -> list[str]:
        """The import report: how the file was read, then every cue not taken as written."""
        subs = self.subtitles
        how = subs.encoding + (", byte-order mark" if subs.bom else "")
        lines = [f"{source}: {subs.format.upper()} read as {how}: {len(subs.cues)} line(s)"]
        if subs.encoding_note:
            lines.append(f"  note: {subs.encoding_note}")
        lines.extend(f"  {note.located(source)}" for note in subs.notes)
        return lines


def import_subtitles(
    subtitle_path: str | Path,
    *,
    video: str,
    audio_template: str,
    language: str | None = None,
    name: str | None = None,
    manifest_dir: str | Path | None = None,
    encoding: str | None = None,
    speakers: Iterable[SpeakerRule] = ALL_SPEAKER_RULES,
) -> SubtitleImport:
    """A version-1 manifest (as data) with one line per spoken cue; paths relative to `manifest_dir`.

    Raises SubtitleError naming the line (the file, its encoding, a timing line, a cue that ends
    before it starts) and ValueError for a bad audio template.
    """
    problem = template_problem(audio_template)
    if problem:
        raise ValueError(
            f"{problem}; use fields {{index}}, {{id}} or {{speaker}}, e.g. 'it/{{index:03d}}.wav'"
        )
    base = Path(manifest_dir) if manifest_dir is not None else Path.cwd()
    subs = read_subtitle_file(subtitle_path, encoding=encoding, speakers=speakers)
    lines: list[dict[str, Any]] = []
    for cue in subs.cues:
        if cue.end <= cue.start:  # a manifest that cannot be planned is not worth writing
            raise SubtitleError(
                f"cue {cue.id} ends at {format_seconds(cue.end, 3)} s, not after its start "
                f"{format_seconds(cue.start, 3)} s",
                cue.line,
                "make the cue's end time later than its start",
            )
        line: dict[str, Any] = {
            "id": cue.id,
            "start": float(cue.start),  # millisecond fractions: the float's repr is the exact decimal
            "end": float(cue.end),
            "audio": _ref_for(fill_template(audio_template, cue), base),
        }
        if cue.speaker:
            line["speaker"] = cue.speaker
        if cue.text:
            line["text"] = cue.text
        lines.append(line)
    data: dict[str, Any] = {"version": 1, "video": _ref_for(video, base)}
    if name:
        data["name"] = name
    data["languages"] = {language or guess_language(subtitle_path): {"lines": lines}}
    return SubtitleImport(data=data, subtitles=subs)


def manifest_from_subtitles(
    subtitle_path: str | Path,
    *,
    video: str,
    audio_template: str,
    language: str | None = None,
    name: str | None = None,
    manifest_dir: str | Path | None = None,
    encoding: str | None = None,
    speakers: Iterable[SpeakerRule] = ALL_SPEAKER_RULES,
) -> dict[str, Any]:
    """The manifest data of `import_subtitles` alone."""
    return import_subtitles(
        subtitle_path,
        video=video,
        audio_template=audio_template,
        language=language,
        name=name,
        manifest_dir=manifest_dir,
        encoding=encoding,
        speakers=speakers,
    ).data


def dump_manifest(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def write_manifest(data: dict[str, Any], out: str | Path) -> Path:
    """Write a manifest atomically (the one atomic writer: temp file beside it, then rename)."""
    return write_text_atomic(out, dump_manifest(data))
