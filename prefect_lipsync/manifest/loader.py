"""Loading a manifest file: syntax, schema, cross-checks and subtitle files, every problem with its place.

`load_manifest(path)` returns a `LoadedManifest`: the validated `Manifest`, where each of its nodes
sits in the file, and per language the script lines to plan (subtitle cues included). Nothing
here probes media: that needs ffprobe, and the planner stays pure. The file is checked against
`ManifestLimits` (size, nesting, alias expansion, number length) before it is parsed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from prefect_lipsync.manifest.errors import ManifestError, ManifestProblem
from prefect_lipsync.manifest.limits import LimitError, ManifestLimits, check_text, read_limited
from prefect_lipsync.manifest.salvage import clean_loc, salvage
from prefect_lipsync.manifest.schema import (
    Defaults,
    LanguageSpec,
    Line,
    Manifest,
    SpeakerPoint,
    SpeakerTarget,
    SpeechSpec,
    safe_name_problem,
    template_problem,
)
from prefect_lipsync.manifest.source_map import (
    ManifestSyntaxError,
    PathKey,
    SourceMap,
    lookup,
    parse_text,
    source_map,
)
from prefect_lipsync.manifest.subtitle_encoding import SubtitleEncodingError, encoding_fix
from prefect_lipsync.manifest.subtitle_speakers import ALL_SPEAKER_RULES
from prefect_lipsync.manifest.subtitles import CueNote, SubtitleError, fill_template, read_subtitle_file

MEMORY_FILE = "<manifest>"


def json_path(path: Iterable[str | int]) -> str:
    """('languages', 'es', 'lines', 2, 'end') -> 'languages.es.lines[2].end'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def is_url(ref: str) -> bool:
    """A remote reference kept as written: http(s) (e.g. presigned) or s3://bucket/key (object storage)."""
    parts = urlsplit(ref)
    return parts.scheme.lower() in ("http", "https", "s3") and bool(parts.netloc)


@dataclass(frozen=True)
class PlanLine:
    """A script line ready for planning, from the manifest or from a subtitle cue."""

    line: Line
    language: str
    position: int
    id: str
    speaker: str | None
    path: PathKey  # the line's node in the manifest (for a cue: the language's `subtitles`)
    cue_file: str | None = None  # the subtitle file, for a cue
    cue_line: int | None = None


@dataclass
class LoadedManifest:
    """A validated manifest, where its nodes are, and the lines of each language."""

    manifest: Manifest
    file: str = MEMORY_FILE
    base_dir: str = field(default_factory=os.getcwd)
    source: SourceMap = field(default_factory=SourceMap)
    lines: dict[str, list[PlanLine]] = field(default_factory=dict)
    problems: list[ManifestProblem] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # languages that cannot be planned
    # Per language from a subtitle file: its cues not taken as written (left out, dropped, merged).
    subtitle_notes: dict[str, list[CueNote]] = field(default_factory=dict)
    # A manifest whose schema failed is still checked without the refused nodes (see `salvage`):
    # per language that lost lines, the original index of each line left; speakers made automatic.
    line_positions: dict[str, list[int]] = field(default_factory=dict)
    broken_speakers: set[str] = field(default_factory=set)

    def resolve(self, ref: str) -> str:
        """A manifest reference as a URL (http(s), s3://) or an absolute local path (relative to the manifest)."""
        if is_url(ref):
            return ref
        if ref.startswith("file://"):
            return urlsplit(ref).path
        return os.path.abspath(os.path.join(self.base_dir, os.path.expanduser(ref)))

    def problem(
        self,
        path: PathKey,
        message: str,
        fix: str | None = None,
        *,
        language: str | None = None,
        line_id: str | None = None,
    ) -> ManifestProblem:
        """A problem at `path` of the manifest."""
        if language is None and len(path) >= 2 and path[0] == "languages":
            language = str(path[1])
        return ManifestProblem(
            file=self.file,
            line=self.source.line_of(path),
            language=language,
            line_id=line_id,
            field=json_path(path) or None,
            message=message,
            fix=fix,
        )

    def line_problem(self, line: PlanLine, field_name: str, message: str, fix: str | None) -> ManifestProblem:
        """A problem with one field of a script line, placed in the manifest or in its subtitle file."""
        if line.cue_file is not None and field_name in ("start", "end", "speaker", "text"):
            return ManifestProblem(
                file=line.cue_file,
                line=line.cue_line,
                language=line.language,
                line_id=line.id,
                field=f"cue {line.id} {field_name}",
                message=message,
                fix=fix,
            )
        path = (*line.path, field_name) if line.cue_file is None else ("languages", line.language, "audio")
        return self.problem(path, message, fix, language=line.language, line_id=line.id)

    def media_refs(self) -> list[str]:
        """Every media file the manifest names (resolved), video first, each once."""
        refs = [self.resolve(self.manifest.video)]
        if isinstance(self.manifest.music_and_effects, str):
            refs.append(self.resolve(self.manifest.music_and_effects))
        for code, spec in self.manifest.languages.items():
            if code in self.broken:
                continue
            if spec.kind == "audio" and spec.audio is not None:
                refs.append(self.resolve(spec.audio))
            refs.extend(self.resolve(pl.line.audio) for pl in self.lines.get(code, []))
        return list(dict.fromkeys(refs))


# ---------------------------------------------------------------- schema errors -> problems

_MODELS_BY_SHAPE: list[tuple[tuple[str | None, ...], type[BaseModel]]] = [
    ((), Manifest),
    (("defaults",), Defaults),
    (("speakers", None), SpeakerTarget),
    (("speakers", None, "point"), SpeakerPoint),
    (("languages", None), LanguageSpec),
    (("languages", None, "speech"), SpeechSpec),
    (("languages", None, "lines", None), Line),
]


def _model_at(path: PathKey) -> type[BaseModel] | None:
    for shape, model in _MODELS_BY_SHAPE:
        if len(shape) == len(path) and all(s is None or s == p for s, p in zip(shape, path, strict=True)):
            return model
    return None


def _fix_for(err: Mapping[str, Any], loc: PathKey) -> str | None:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    name = str(loc[-1]) if loc else ""
    if kind == "manifest":
        fix = ctx.get("fix")
        return str(fix) if fix else None
    if kind == "missing":
        return f"add `{name}`"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model else []
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return f"{hint}remove `{name}`" + (f" (allowed here: {', '.join(allowed)})" if allowed else "")
    if kind == "literal_error":
        return f"use one of {ctx.get('expected')}"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        return "give a number" if kind.startswith("float") else "give a whole number"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return "give a value " + str(err["msg"]).removeprefix("Input should be ")
    if kind in ("string_type",):
        return "give text (quote it in YAML)"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "give a mapping of key: value pairs here"
    if kind == "list_type":
        return "give a list here"
    if kind in ("string_too_short", "too_short"):
        return "give a non-empty value"
    if kind == "bool_type":
        return "give true or false"
    return None


def _line_id_at(data: Any, loc: PathKey) -> str | None:
    if len(loc) >= 4 and loc[0] == "languages" and loc[2] == "lines" and isinstance(loc[3], int):
        raw = lookup(data, loc[:4])
        if isinstance(raw, Mapping) and raw.get("id") not in (None, ""):
            return str(raw["id"])
        return f"#{loc[3] + 1}"
    return None


def _schema_problems(exc: ValidationError, data: Any, file: str, source: SourceMap) -> list[ManifestProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        # pydantic names the union member that failed (float | str): noise for a user.
        loc = clean_loc(err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "is required"
        elif err["type"] == "extra_forbidden":
            message = f"unknown key `{loc[-1]}`"
        elif err["type"] == "literal_error" and loc == ("version",):
            message = f"unsupported manifest version {err.get('input')!r}"
        problems.append(
            ManifestProblem(
                file=file,
                line=source.line_of(loc),
                language=str(loc[1]) if len(loc) >= 2 and loc[0] == "languages" else None,
                line_id=_line_id_at(data, loc),
                field=json_path(loc) or None,
                message=message,
                fix=_fix_for(err, loc),
            )
        )
    return problems


# ---------------------------------------------------------------- cross-checks and lines


def _speaker_of(
    raw: str | None, loaded: LoadedManifest, where: PathKey, line_id: str
) -> tuple[str | None, list[ManifestProblem]]:
    speakers = loaded.manifest.speakers
    if not speakers:
        return raw, []
    names = list(speakers)
    if raw is None:
        if len(names) == 1:
            return names[0], []
        return None, [
            loaded.problem(
                (*where, "speaker"),
                f"the manifest defines {len(names)} speakers, so each line must say whose it is",
                f"add speaker: one of {', '.join(names)}",
                line_id=line_id,
            )
        ]
    if raw in speakers:
        return raw, []
    folded = [n for n in names if n.casefold() == raw.casefold()]
    if len(folded) == 1:
        return folded[0], []
    return None, [
        loaded.problem(
            (*where, "speaker"),
            f"unknown speaker {raw!r}",
            f"use one of {', '.join(names)}, or add {raw!r} under speakers",
            line_id=line_id,
        )
    ]


def _manifest_lines(loaded: LoadedManifest, code: str, spec: LanguageSpec) -> list[PlanLine]:
    out: list[PlanLine] = []
    seen: dict[str, int] = {}
    positions = loaded.line_positions.get(code)
    for n, line in enumerate(spec.lines or []):
        i = positions[n] if positions is not None else n  # where the line is in the file
        path: PathKey = ("languages", code, "lines", i)
        line_id = line.id or f"#{i + 1}"
        if line.id is not None and line.id in seen:
            loaded.problems.append(
                loaded.problem(
                    (*path, "id"),
                    f"line id {line.id!r} is used twice (also by line #{seen[line.id] + 1})",
                    "give each line of a language its own id",
                    line_id=line_id,
                )
            )
        seen.setdefault(line_id, i)
        speaker, problems = _speaker_of(line.speaker, loaded, path, line_id)
        loaded.problems.extend(problems)
        out.append(PlanLine(line=line, language=code, position=i, id=line_id, speaker=speaker, path=path))
    return out


def _subtitle_lines(loaded: LoadedManifest, code: str, spec: LanguageSpec) -> list[PlanLine] | None:
    assert spec.subtitles is not None and spec.audio is not None
    template_error = template_problem(spec.audio)
    if template_error:
        loaded.problems.append(
            loaded.problem(
                ("languages", code, "audio"),
                template_error,
                'use fields {index}, {id} or {speaker}, e.g. "it/{index:03d}.wav"',
            )
        )
        return None
    sub_file = loaded.resolve(spec.subtitles)
    rules = ALL_SPEAKER_RULES if spec.speakers_from is None else frozenset(spec.speakers_from)
    try:
        read = read_subtitle_file(sub_file, encoding=spec.encoding, speakers=rules)
    except SubtitleError as exc:
        if isinstance(exc, SubtitleEncodingError):  # the fix is the manifest's key, not the CLI's flag
            exc.fix = encoding_fix(exc.guesses, f"add encoding: {{name}} to languages.{code}")
        if exc.line is None:
            loaded.problems.append(
                loaded.problem(("languages", code, "subtitles"), f"{spec.subtitles}: {exc}", exc.fix)
            )
        else:
            loaded.problems.append(
                ManifestProblem(
                    file=sub_file,
                    line=exc.line,
                    language=code,
                    field="subtitles",
                    message=str(exc),
                    fix=exc.fix,
                )
            )
        return None
    cues = read.cues
    loaded.subtitle_notes[code] = list(read.notes)
    out = []
    where: PathKey = ("languages", code, "subtitles")
    unsafe = False
    for cue in cues:
        # Cue ids and speakers fill the audio template (file names): the same safe set as ids.
        for what, value in (("id", cue.id), ("speaker", cue.speaker)):
            why = safe_name_problem(value, f"cue {what}") if value is not None else None
            if why is not None:
                unsafe = True
                loaded.problems.append(
                    ManifestProblem(
                        file=sub_file,
                        line=cue.line,
                        language=code,
                        field=f"cue {cue.index} {what}",
                        message=why,
                        fix=f"rename the cue's {what} to letters, digits, '-', '_' and '.'",
                    )
                )
        if unsafe:
            continue
        speaker, problems = _speaker_of(cue.speaker, loaded, where, cue.id)
        for p in problems:  # a cue's speaker is wrong in the subtitle file, not the manifest
            loaded.problems.append(
                p.model_copy(update={"file": sub_file, "line": cue.line, "field": f"cue {cue.id} speaker"})
            )
        line = Line(
            id=cue.id,
            start=float(cue.start),
            end=float(cue.end),
            audio=fill_template(spec.audio, cue),
            speaker=cue.speaker,
            text=cue.text,
        )
        out.append(
            PlanLine(
                line=line,
                language=code,
                position=cue.index - 1,
                id=cue.id,
                speaker=speaker,
                path=where,
                cue_file=sub_file,
                cue_line=cue.line,
            )
        )
    return None if unsafe else out


def prepare(
    manifest: Manifest,
    *,
    file: str = MEMORY_FILE,
    base_dir: str | Path | None = None,
    source: SourceMap | None = None,
    line_positions: Mapping[str, list[int]] | None = None,
) -> LoadedManifest:
    """Cross-check a validated manifest and gather its lines (reads subtitle files; never raises).

    `line_positions` (from `salvage`) gives, per language that lost lines, each remaining line's
    index in the file, so problems still name the right line.
    """
    loaded = LoadedManifest(
        manifest=manifest,
        file=file,
        base_dir=os.path.abspath(base_dir) if base_dir is not None else os.getcwd(),
        source=source or SourceMap(),
        line_positions=dict(line_positions or {}),
    )
    for path, line in loaded.source.duplicates:
        loaded.problems.append(
            ManifestProblem(
                file=file,
                line=line,
                language=str(path[1]) if len(path) >= 2 and path[0] == "languages" else None,
                field=json_path(path),
                message=f"key `{path[-1]}` appears twice in one mapping (the last one would silently win)",
                fix="keep one of them",
            )
        )
    for code, spec in manifest.languages.items():
        before = len(loaded.problems)
        if spec.speaker is not None:
            _, problems = _speaker_of(spec.speaker, loaded, ("languages", code), "")
            loaded.problems.extend(p.model_copy(update={"line_id": None}) for p in problems)
        if spec.kind == "lines":
            loaded.lines[code] = _manifest_lines(loaded, code, spec)
        elif spec.kind == "subtitles":
            lines = _subtitle_lines(loaded, code, spec)
            if lines is None:
                loaded.broken.add(code)
            else:
                loaded.lines[code] = lines
        if len(loaded.problems) > before:
            loaded.broken.add(code)
    return loaded


def read_manifest(
    path: str | Path, *, limits: ManifestLimits | None = None
) -> tuple[LoadedManifest | None, list[ManifestProblem]]:
    """Load a manifest file; return it and every problem found.

    When its schema fails, what is left without the refused nodes is returned (see `salvage`), so
    planning it finds the timing and media problems too; it carries the schema problems in
    `problems` and is never planned into a request. None when nothing can be salvaged (bad YAML,
    a broken frame). `limits` default to `ManifestLimits.from_env()`; a file that breaks one is
    refused before it is parsed, in bounded time and memory.
    """
    file = str(path)
    limits = limits or ManifestLimits.from_env()
    is_json = Path(path).suffix.lower() == ".json"
    try:
        text = read_limited(path, limits).decode("utf-8")
        text = text.removeprefix("\ufeff")
        check_text(text, is_json=is_json, limits=limits)
    except LimitError as exc:
        return None, [ManifestProblem(file=file, line=exc.line, message=str(exc), fix=exc.fix)]
    except FileNotFoundError:
        return None, [ManifestProblem(file=file, message="manifest file not found", fix="check the path")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [
            ManifestProblem(file=file, message=f"cannot read the manifest: {exc}", fix="save it as UTF-8")
        ]
    try:
        data = parse_text(text, is_json=is_json)
    except ManifestSyntaxError as exc:
        return None, [ManifestProblem(file=file, line=exc.line, message=str(exc), fix=exc.fix)]
    if not isinstance(data, Mapping):
        return None, [
            ManifestProblem(
                file=file,
                line=1,
                message=f"a manifest is a mapping (version, video, languages, ...), got {type(data).__name__}",
                fix="start from the example manifest: version: 1, video: FILE, languages: {...}",
            )
        ]
    return read_manifest_data(
        data, file=file, base_dir=os.path.dirname(os.path.abspath(path)), source=source_map(text)
    )


def read_manifest_data(
    data: Any, *, file: str = MEMORY_FILE, base_dir: str | Path | None = None, source: SourceMap | None = None
) -> tuple[LoadedManifest | None, list[ManifestProblem]]:
    """A manifest handed over as a mapping (an upstream step's output), checked as a file would be.

    Relative media paths are resolved against `base_dir` (default: the working directory); problems
    name `file` (a label such as `<mapping>`) and the field, as there are no lines to name.
    """
    source = source or SourceMap()
    if not isinstance(data, Mapping):
        return None, [
            ManifestProblem(
                file=file,
                message=f"a manifest is a mapping (version, video, languages, ...), got {type(data).__name__}",
                fix="start from the example manifest: version: 1, video: FILE, languages: {...}",
            )
        ]
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = _schema_problems(exc, data, file, source)
        rest = salvage(data, exc)
        if rest is None:
            problems += [  # a duplicated key may be the cause of a schema error: say so too
                ManifestProblem(
                    file=file,
                    line=line,
                    field=json_path(p),
                    message=f"key `{p[-1]}` appears twice",
                    fix="keep one",
                )
                for p, line in source.duplicates
            ]
            return None, problems
        loaded = prepare(
            rest.manifest, file=file, base_dir=base_dir, source=source, line_positions=rest.line_positions
        )
        loaded.broken_speakers = rest.broken_speakers
        loaded.problems[:0] = problems  # in the order of the passes: schema first
        return loaded, list(loaded.problems)
    loaded = prepare(manifest, file=file, base_dir=base_dir, source=source)
    return loaded, list(loaded.problems)


def load_manifest(path: str | Path, *, limits: ManifestLimits | None = None) -> LoadedManifest:
    """Load and check a manifest file; raise ManifestError listing every problem found."""
    loaded, problems = read_manifest(path, limits=limits)
    if problems or loaded is None:
        raise ManifestError(problems)
    return loaded
