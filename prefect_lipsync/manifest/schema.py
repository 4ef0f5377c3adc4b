"""The manifest format (version 1) as pydantic models: one place that says what a manifest may hold.

The same models give the Prefect UI its forms, so every field has a description. Unknown keys
are refused (a typo such as `audo:` must not be ignored silently).
"""

from __future__ import annotations

import codecs
import re
import string
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from prefect_lipsync.manifest.timecode import TimeFormatError, check_time_syntax, is_smpte

SyncMode = Literal["bounce", "cut_off", "silence", "remap"]
TEMPLATE_FIELDS = ("index", "id", "speaker")
MAX_TEMPO_LIMIT = 1.10
# Names, ids, speakers and language codes end up in file names and one-line messages: letters,
# digits, '_', '.', '-' only (no newline, no path separator), starting with a letter or digit.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Speakers are people's names ("Hélène", "Dr. Smith"): any letters, digits, spaces, '.', '-', '_' and
# apostrophes, still no separator, control character or newline, as they may fill an audio template.
_SPEAKER_RE = re.compile(r"[^\W_][\w .'-]*")
MAX_NAME_CHARS = 100
SAFE_NAME_FIX = "use letters, digits, '-', '_' and '.', starting with a letter or digit"


def safe_name_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be a name, id, speaker or language code; None when it can."""
    if len(value) > MAX_NAME_CHARS:
        return f"{what} {value[:20]!r}... is longer than {MAX_NAME_CHARS} characters"
    pattern = _SPEAKER_RE if "speaker" in what else _NAME_RE
    if not pattern.fullmatch(value) or ".." in value:
        return f"{what} {value!r} cannot be used in a file name"
    return None


def _safe(value: str | None, what: str, fix: str = SAFE_NAME_FIX) -> str | None:
    if value is not None:
        why = safe_name_problem(value, what)
        if why is not None:
            raise custom_error(why, fix)
    return value


def custom_error(message: str, fix: str) -> PydanticCustomError:
    """A validation error that carries its fix to the problem list."""
    return PydanticCustomError("manifest", "{message}", {"message": message, "fix": fix})


def _time(value: Any) -> Any:
    try:
        check_time_syntax(value)
    except TimeFormatError as exc:
        raise custom_error(str(exc), exc.fix) from None
    return value


TimeValue = Annotated[
    float | str,
    BeforeValidator(_time),
    Field(
        description='Seconds (3.52), "HH:MM:SS.mmm", "MM:SS.mmm" or SMPTE "HH:MM:SS:FF" (frames of the video).'
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Defaults(_Strict):
    """Planning settings for every language."""

    sync_mode: SyncMode = Field(
        default="cut_off", description="sync-3 syncMode: what to do when audio and video lengths differ."
    )
    merge_gap: float = Field(
        default=0.25,
        ge=0,
        le=10,
        description="Lines of one speaker and one audio file closer than this (seconds) become one segment.",
    )
    min_segment: float = Field(
        default=0.5,
        ge=0,
        le=30,
        description="Shorter lines (seconds) are merged, widened into free time, or dropped with a warning.",
    )
    max_tempo: float = Field(
        default=MAX_TEMPO_LIMIT,
        ge=1.0,
        le=MAX_TEMPO_LIMIT,
        description="The most a too-long line may be sped up to fit its slot (1.0-1.10).",
    )


class SpeakerPoint(_Strict):
    """A point on the speaker's face in one frame."""

    frame: int = Field(default=0, ge=0, description="Frame index (0-based) the point is given in.")
    x: float = Field(ge=0, description="Horizontal pixel position.")
    y: float = Field(ge=0, description="Vertical pixel position.")


class SpeakerTarget(_Strict):
    """How to find one speaker's face: a point, a box, or automatic detection (exactly one)."""

    point: SpeakerPoint | None = Field(default=None, description="A point on the face: {frame, x, y}.")
    box: list[float] | None = Field(
        default=None, description="The face's box [x1, y1, x2, y2] in pixels, for the whole video."
    )
    auto: bool | None = Field(default=None, description="true: let sync-3 detect the active speaker.")

    @field_validator("box")
    @classmethod
    def _box(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return value
        if len(value) != 4:
            raise custom_error(
                f"a box is four numbers [x1, y1, x2, y2], got {len(value)}", "write [x1, y1, x2, y2]"
            )
        x1, y1, x2, y2 = value
        if min(value) < 0 or not (x1 < x2 and y1 < y2):
            raise custom_error(
                f"box {value} needs 0 <= x1 < x2 and 0 <= y1 < y2",
                "give the top-left then bottom-right corner",
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("point", "box") if getattr(self, k) is not None]
        if self.auto:
            given.append("auto")
        if len(given) != 1:
            detail = "none" if not given else " and ".join(given)
            raise custom_error(
                f"a speaker needs exactly one of point, box, auto: true (got {detail})",
                "keep one of {point: {frame, x, y}}, {box: [x1, y1, x2, y2]}, {auto: true}",
            )
        return self

    @property
    def kind(self) -> Literal["point", "box", "auto"]:
        return "point" if self.point is not None else "box" if self.box is not None else "auto"


class Line(_Strict):
    """One line of the script: where it is said in the video, and its dubbed audio."""

    id: str | None = Field(
        default=None, min_length=1, description="A name for the line, unique in its language."
    )
    start: TimeValue = Field(description="Where the line starts in the video.")
    end: TimeValue = Field(description="Where the line ends in the video (after start).")
    audio: str = Field(min_length=1, description="Dubbed audio: a path (relative to the manifest) or URL.")
    audio_start: TimeValue | None = Field(
        default=None, description="Where the line starts in the audio file."
    )
    audio_end: TimeValue | None = Field(default=None, description="Where the line ends in the audio file.")
    speaker: str | None = Field(default=None, min_length=1, description="Who says it (a key of `speakers`).")
    text: str | None = Field(default=None, description="What is said (for people; not sent).")

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        # `id: 7` in YAML is an int; an id is a name, so take it as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("id")
    @classmethod
    def _id_safe(cls, value: str | None) -> str | None:
        return _safe(value, "line id")

    @field_validator("speaker")
    @classmethod
    def _speaker_safe(cls, value: str | None) -> str | None:
        return _safe(value, "speaker")


class SpeechSpec(_Strict):
    """Text for the provider's TTS to speak over the whole video."""

    text: str = Field(min_length=1, max_length=5000, description="Text to speak (1-5000 characters).")
    voice: str = Field(default="auto", min_length=1, description="Voice identifier; `auto` picks one.")


_KINDS = ("lines", "audio", "speech", "subtitles")


class LanguageSpec(_Strict):
    """One output video: its speech as lines, one dub track, TTS text, or a subtitle file."""

    lines: list[Line] | None = Field(default=None, description="Script lines, each with its own audio.")
    audio: str | None = Field(
        default=None,
        description="One dub track for the whole video; with `subtitles`, the per-line audio template "
        "(fields {index}, {id}, {speaker}).",
    )
    speech: SpeechSpec | None = Field(default=None, description="TTS text for the whole video.")
    subtitles: str | None = Field(default=None, description="An SRT or WebVTT file with the lines.")
    encoding: str | None = Field(
        default=None,
        description="With `subtitles`: the file's text encoding (cp1252, gb2312, ...) when it is not UTF-8 and "
        "has no byte-order mark.",
    )
    speakers_from: list[Literal["voice", "dash", "label", "bracket"]] | None = Field(
        default=None,
        description="With `subtitles`: the conventions that name a cue's speaker (WebVTT voice, '- NAME:' dash, "
        "'Name:' label, '[Name]' bracket); default all, [] for none.",
    )
    sync_mode: SyncMode | None = Field(
        default=None, description="Overrides defaults.sync_mode for this language."
    )
    speaker: str | None = Field(
        default=None, description="With a whole-track `audio` or `speech`: the speaker to target."
    )

    @field_validator("speaker")
    @classmethod
    def _speaker_safe(cls, value: str | None) -> str | None:
        return _safe(value, "speaker")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if self.subtitles is not None:
            given = [k for k in given if k != "audio"]
            if self.audio is None:
                raise custom_error(
                    "subtitles need an audio template for the lines' files",
                    'add audio: "dir/{index:03d}.wav" (fields {index}, {id}, {speaker})',
                )
        if len(given) != 1:
            detail = "none of them" if not given else " and ".join(given)
            raise custom_error(
                f"a language needs exactly one of lines, audio, speech, subtitles (got {detail})",
                "keep exactly one: lines: [...], audio: FILE, speech: {text: ...} or subtitles: FILE",
            )
        if self.lines is not None and not self.lines:
            raise custom_error("lines is empty", "add at least one line, or remove the language")
        return self

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise custom_error(
                    f"unknown text encoding {value!r}",
                    "give a codec name such as cp1252, gb2312, shift_jis, utf-16",
                ) from None
        return value

    @model_validator(mode="after")
    def _subtitle_options(self) -> Self:
        given = [k for k in ("encoding", "speakers_from") if getattr(self, k) is not None]
        if given and self.subtitles is None:
            raise custom_error(
                f"{' and '.join(given)} only apply to a subtitles file",
                f"remove {' and '.join(given)}, or give subtitles: FILE",
            )
        return self

    @property
    def kind(self) -> Literal["lines", "audio", "speech", "subtitles"]:
        if self.subtitles is not None:
            return "subtitles"
        if self.lines is not None:
            return "lines"
        return "speech" if self.speech is not None else "audio"


class AudioStreamRef(_Strict):
    """An audio stream of the source video, by the index ffprobe gives it (`Stream #0:N`)."""

    stream: int = Field(
        ge=0, description="The stream's index in the video, as ffprobe numbers streams (Stream #0:N)."
    )


class Manifest(_Strict):
    """A source video and, per language, the dubbed speech to lip-sync it to."""

    version: Literal[1] = Field(description="Manifest format version; only 1 exists.")
    video: str = Field(
        min_length=1, description="The source video: a path (relative to the manifest) or URL."
    )
    name: str | None = Field(default=None, description="A name used in output file names.")
    timecode_start: str | None = Field(
        default=None,
        description='Where SMPTE times ("HH:MM:SS:FF") count from: `source` (the video\'s own start timecode, '
        'from its tmcd track or timecode tag) or a timecode such as "01:00:00:00". Without it they count from '
        "the video's first frame. Times in seconds always count from the first frame.",
    )
    defaults: Defaults = Field(default_factory=Defaults, description="Planning settings for every language.")
    speakers: dict[str, SpeakerTarget] | None = Field(
        default=None,
        description="The speakers and how to find their faces; without it, one auto-detected speaker.",
    )
    languages: dict[str, LanguageSpec] = Field(
        min_length=1, description="One output video per language: language code -> its speech."
    )
    music_and_effects: str | AudioStreamRef | None = Field(
        default=None,
        description="The music-and-effects stem each language's dub is mixed over in the delivered video, at the "
        "video's channel layout: a file (path relative to the manifest, or URL), or {stream: N}, an audio stream "
        "of the video. Without it the output's audio is what the service returns.",
    )

    @field_validator("music_and_effects", mode="before")
    @classmethod
    def _stem_shape(cls, value: Any) -> Any:
        # One clear problem for each wrong shape, instead of one per member of the union.
        forms = "give a file (music_and_effects: me.wav) or an audio stream of the video (music_and_effects: {stream: 2})"
        if value is None or isinstance(value, AudioStreamRef):
            return value
        if isinstance(value, str):
            if not value.strip():
                raise custom_error("music_and_effects is empty", f"{forms}, or remove it")
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            raise custom_error(
                f"music_and_effects: {value} is a bare number",
                f"write music_and_effects: {{stream: {value}}} for an audio stream of the video",
            )
        if isinstance(value, dict):
            other = [str(k) for k in value if k != "stream"]
            stream = value.get("stream")
            if other:
                raise custom_error(
                    f"music_and_effects takes only `stream` in a mapping (unknown key {', '.join(other)})",
                    forms,
                )
            if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
                raise custom_error(
                    f"music_and_effects: stream must be a stream index (0, 1, 2, ...), got {stream!r}",
                    "give the index ffprobe shows for the stem (Stream #0:N), e.g. {stream: 2}",
                )
            return value
        raise custom_error(f"music_and_effects cannot be a {type(value).__name__}", forms)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return _safe(value, "name")

    @field_validator("timecode_start", mode="before")
    @classmethod
    def _timecode_start(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, str) or not (value.strip() == "source" or is_smpte(value)):
            raise custom_error(
                f"timecode_start must be `source` or a SMPTE timecode, got {value!r}",
                'write timecode_start: source (the video\'s own timecode) or timecode_start: "01:00:00:00"',
            )
        if value.strip() != "source":
            _time(value)  # a label that cannot exist (a dropped drop-frame label) is refused here
        return value.strip()

    @field_validator("speakers")
    @classmethod
    def _speaker_names(cls, value: dict[str, SpeakerTarget] | None) -> dict[str, SpeakerTarget] | None:
        for name in value or {}:
            _safe(str(name), "speaker name")
        return value

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: dict[str, LanguageSpec]) -> dict[str, LanguageSpec]:
        for code in value:
            _safe(str(code), "language code", "use a code such as es, pt-BR, zh_Hans")
        return value


def template_problem(template: str) -> str | None:
    """Why `template` cannot name per-line audio files, or None when it can."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"audio template {template!r} is malformed ({exc})"
    unknown = [f for f in fields if f.split(".")[0].split("[")[0] not in TEMPLATE_FIELDS]
    if unknown:
        return (
            f"audio template {template!r} uses unknown field(s) {', '.join('{' + f + '}' for f in unknown)}"
        )
    if not fields:
        return f"audio template {template!r} has no field, so every line would get the same file"
    try:
        template.format(index=1, id="1", speaker="speaker")
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        return f"audio template {template!r} cannot be filled ({exc})"
    return None
