"""The sync-3 request and the Runware answers, as pydantic v2 models.

`Sync3Request` holds every parameter and every rule of the provider's sync-3 page, so that a
request that would be refused (and perhaps billed) is refused here first. It reads the wire JSON
(camelCase) and gives it back unchanged:

    request = Sync3Request.model_validate(payload)          # raises Sync3ValidationError
    request.model_dump(mode="json", by_alias=True, exclude_none=True) == payload

Spec defaults are exposed on the attributes (`request.output_format == "MP4"`) but a default the
caller did not set is not sent: the service applies the same default, and the round trip stays
exact.
"""

from __future__ import annotations

import itertools
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

MODEL_ID = "sync:3@0"
MODEL_ALIASES = frozenset({"sync:3@0", "sync:lipsync@3"})
TASK_TYPE: Literal["videoInference"] = "videoInference"

SyncMode = Literal["bounce", "cut_off", "silence", "remap"]
OutputFormat = Literal["MP4", "WEBM", "MOV"]
SafetyMode = Literal["none", "fast", "full"]

_GRID = Decimal("0.01")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# --------------------------------------------------------------------------- problems


class Problem(BaseModel):
    """One thing wrong with a request: where (a JSON path) and what, in words."""

    path: str = Field(description="JSON path of the offending field, e.g. settings.segments[2].endTime.")
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(request)'}: {self.message}"


class Sync3ValidationError(ValueError):
    """A sync-3 request breaks one or more rules of the spec; `problems` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"sync-3 request is invalid ({len(problems)} {noun}):\n{lines}")


def json_path(loc: tuple[int | str, ...]) -> str:
    """('settings', 'segments', 2, 'endTime') -> 'settings.segments[2].endTime'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_UNION_TAGS = frozenset({"str", "float", "int", "bool", "list[float]", "list[int]"})
_PYDANTIC_WORDS = {
    "missing": "is required",
    "extra_forbidden": "is not a sync-3 parameter (remove it)",
}


def _problems_from_pydantic(exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        if err["type"] == "sync3_rules":
            for path, message in ctx.get("problems", []):
                problems.append(Problem(path=_join(json_path(tuple(err["loc"])), path), message=message))
            continue
        # Union members report one error each; the member's tag is noise for a user.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
        message = _PYDANTIC_WORDS.get(err["type"], err["msg"])
        if len(loc) < len(err["loc"]) and err["type"] in {"int_type", "float_type"}:
            message = "must be a number"
        message = message.removeprefix("Value error, ")
        problems.append(Problem(path=json_path(loc), message=message))
    return _dedupe(problems)


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            unique.append(p)
    return unique


def _rules_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """Several rule violations of one object, carried through pydantic as one error."""
    summary = "; ".join(f"{path or '(object)'}: {msg}" for path, msg in problems)
    return PydanticCustomError("sync3_rules", summary, {"problems": problems})


# --------------------------------------------------------------------------- field types


def _on_grid(value: float) -> bool:
    try:
        return Decimal(repr(value)) % _GRID == 0
    except InvalidOperation:
        return False


def _check_step(value: float) -> float:
    if not _on_grid(value):
        raise ValueError(f"{value!r} is not on the 0.01 s grid (round it to two decimals, e.g. {value:.2f})")
    return value


def is_uuid(value: str) -> bool:
    return bool(_UUID_RE.match(value))


def is_uuid4(value: str) -> bool:
    return is_uuid(value) and uuid.UUID(value).version == 4


def is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def is_local_ref(value: str) -> bool:
    """A `file://` URI: a local file the client must upload before submitting."""
    return urlsplit(value).scheme == "file"


def is_object_ref(value: str) -> bool:
    """An `s3://bucket/key` object: to be presigned (or uploaded) before submitting; the service cannot read it."""
    parts = urlsplit(value)
    return parts.scheme == "s3" and bool(parts.netloc) and bool(parts.path.strip("/"))


def _check_media_ref(value: str) -> str:
    if is_uuid(value) or is_http_url(value) or is_local_ref(value) or is_object_ref(value):
        return value
    raise ValueError(
        "must be a media UUID (from an upload) or an http(s) URL"
        f" (or a file:// URI or s3:// object to upload first), got {value[:80]!r}"
    )


def _check_url(value: str) -> str:
    if not is_http_url(value):
        raise ValueError(f"must be an http(s) URL, got {value[:80]!r}")
    return value


# Wire numbers stay as given (an int stays an int) so a valid payload round-trips to identical
# JSON; strict, so "12" or true is a type error rather than a silent conversion.
Number = Annotated[StrictInt | StrictFloat, Field(allow_inf_nan=False)]
TimeValue = Annotated[StrictInt | StrictFloat, Field(ge=0, allow_inf_nan=False)]


# --------------------------------------------------------------------------- base


class _WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown keys refused; unset defaults not sent."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )

    # Keys that are always sent even when the caller did not set them.
    _always_sent: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _drop_unset_defaults(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        for name, field in type(self).model_fields.items():
            if name in self.model_fields_set or name in self._always_sent:
                continue
            key = (field.alias or name) if info.by_alias else name
            if key in data and getattr(self, name) == field.get_default(call_default_factory=True):
                del data[key]
        return data


# --------------------------------------------------------------------------- request parts


class Inputs(_WireModel):
    """Input media: the video (required) and, for a whole-track dub, the audio."""

    video: str = Field(description="Video input: a media UUID or URL.")
    audio: str | None = Field(default=None, description="Audio input: a media UUID or URL.")

    @field_validator("video", "audio")
    @classmethod
    def _refs(cls, value: str | None) -> str | None:
        return value if value is None else _check_media_ref(value)


class Speech(_WireModel):
    """Text to speak with the provider's TTS instead of an audio input."""

    text: str = Field(
        min_length=1, max_length=5000, description="Text to convert to speech (1-5000 characters)."
    )
    voice: str = Field(default="auto", min_length=1, description="Voice identifier; `auto` picks one.")


class Safety(_WireModel):
    """Content safety checking of the generated video."""

    check_content: StrictBool = Field(
        default=False, description="Enable content safety checking (fast mode if on)."
    )
    mode: SafetyMode = Field(default="none", description="none, fast (key frames) or full (all frames).")

    @property
    def effective_mode(self) -> SafetyMode:
        """The mode the service applies: `checkContent` alone means `fast`."""
        if "mode" not in self.model_fields_set and self.check_content:
            return "fast"
        return self.mode


BoundingBox = list[Number] | None


class ActiveSpeakerDetection(_WireModel):
    """Which face to lip-sync in a clip with several people."""

    auto_detect: StrictBool = Field(
        default=False, description="Detect and target the active speaker automatically."
    )
    bounding_boxes: list[BoundingBox] | None = Field(
        default=None,
        description="Per-frame face boxes [x1, y1, x2, y2], or null for a frame without a target.",
    )
    coordinates: list[Number] | None = Field(
        default=None, description="[x, y] point on the target speaker's face in frame `frameNumber`."
    )
    frame_number: StrictInt | None = Field(default=None, ge=0, description="Frame index of `coordinates`.")

    @model_validator(mode="after")
    def _rules(self) -> Self:
        problems: list[tuple[str, str]] = []
        if self.bounding_boxes is not None and self.coordinates is not None:
            problems.append(
                ("boundingBoxes", "cannot be used together with coordinates; give one or the other")
            )
        if (self.coordinates is None) != (self.frame_number is None):
            missing = "frameNumber" if self.frame_number is None else "coordinates"
            problems.append((missing, "coordinates and frameNumber must be given together"))
        if self.coordinates is not None:
            if len(self.coordinates) != 2:
                problems.append(("coordinates", f"must be two numbers [x, y], got {len(self.coordinates)}"))
            elif any(c < 0 for c in self.coordinates):
                problems.append(("coordinates", "x and y must not be negative"))
        for i, box in enumerate(self.bounding_boxes or []):
            if box is None:
                continue
            where = f"boundingBoxes[{i}]"
            if len(box) != 4:
                problems.append((where, f"a box is null or four numbers [x1, y1, x2, y2], got {len(box)}"))
                continue
            x1, y1, x2, y2 = box
            if min(box) < 0:
                problems.append((where, "box coordinates must not be negative"))
            if not (x1 < x2 and y1 < y2):
                problems.append((where, f"needs x1 < x2 and y1 < y2, got {box}"))
        if problems:
            raise _rules_error(problems)
        return self


class Segment(_WireModel):
    """One stretch of the video and the audio that plays there."""

    start_time: Annotated[TimeValue, Field(description="Start in the video, seconds, 0.01 s steps.")]
    end_time: Annotated[TimeValue, Field(description="End in the video, seconds; > startTime.")]
    audio: str = Field(description="Audio source URL for this segment.")
    audio_start_time: Annotated[TimeValue, Field(description="Start within the audio file, seconds.")] = 0
    audio_end_time: Annotated[TimeValue | None, Field(description="End within the audio file, seconds.")] = (
        None
    )

    @field_validator("start_time", "end_time", "audio_start_time", "audio_end_time")
    @classmethod
    def _on_grid(cls, value: float | None) -> float | None:
        return value if value is None else _check_step(value)

    @field_validator("audio")
    @classmethod
    def _ref(cls, value: str) -> str:
        if is_http_url(value) or is_local_ref(value) or is_object_ref(value):
            return value
        hint = " (pass the upload's mediaURL, not its UUID)" if is_uuid(value) else ""
        raise ValueError(f"must be an http(s) URL{hint}, got {value[:80]!r}")

    @model_validator(mode="after")
    def _rules(self) -> Self:
        problems = _segment_rule_problems(
            self.start_time,
            self.end_time,
            has_audio_start="audio_start_time" in self.model_fields_set,
            audio_start=self.audio_start_time,
            audio_end=self.audio_end_time,
        )
        if problems:
            raise _rules_error(problems)
        return self

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time


def _segment_rule_problems(
    start: float | None,
    end: float | None,
    *,
    has_audio_start: bool,
    audio_start: float | None,
    audio_end: float | None,
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if start is not None and end is not None and end <= start:
        problems.append(("endTime", f"must be greater than startTime ({start} >= {end})"))
    if has_audio_start != (audio_end is not None):
        missing = "audioEndTime" if audio_end is None else "audioStartTime"
        problems.append((missing, "audioStartTime and audioEndTime must be given together"))
    if audio_end is not None and audio_start is not None and audio_end <= audio_start:
        problems.append(
            ("audioEndTime", f"must be greater than audioStartTime ({audio_start} >= {audio_end})")
        )
    return problems


class Tts(_WireModel):
    """The text-to-speech provider used with `speech`."""

    provider: str = Field(default="elevenlabs", min_length=1, description="Name of the TTS provider.")
    stability: Number | None = Field(default=None, ge=0, le=1, description="Voice stability, 0-1.")
    similarity_boost: Number | None = Field(default=None, ge=0, le=1, description="Voice similarity, 0-1.")


class Settings(_WireModel):
    """Technical parameters of the generation."""

    active_speaker_detection: ActiveSpeakerDetection | None = None
    segments: list[Segment] | None = Field(
        default=None, description="Time segments, each with its own audio."
    )
    sync_mode: SyncMode = Field(
        default="cut_off", description="What to do when audio and video lengths differ."
    )
    tts: Tts | None = None

    @model_validator(mode="after")
    def _rules(self) -> Self:
        problems: list[tuple[str, str]] = []
        segments = self.segments or []
        if self.segments is not None and not segments:
            problems.append(("segments", "must hold at least one segment (or leave it out)"))
        ordered = sorted(range(len(segments)), key=lambda i: segments[i].start_time)
        for a, b in itertools.pairwise(ordered):
            if segments[b].start_time < segments[a].end_time:
                problems.append(
                    (
                        f"segments[{b}].startTime",
                        f"overlaps segments[{a}] ({segments[a].start_time}-"
                        f"{segments[a].end_time}); one audio plays at a time",
                    )
                )
        if problems:
            raise _rules_error(problems)
        return self


# --------------------------------------------------------------------------- the request


class Sync3Request(_WireModel):
    """A sync-3 lip-sync task (`taskType: videoInference`), every rule of the spec checked."""

    _always_sent: ClassVar[frozenset[str]] = frozenset({"task_type", "model"})

    task_type: Literal["videoInference"] = Field(default=TASK_TYPE, alias="taskType")
    task_uuid: str | None = Field(
        default=None,
        alias="taskUUID",
        description="UUID v4 of the task. Left empty, the client derives it from the request's content.",
    )
    model: str = Field(default=MODEL_ID, description="sync:3@0 (sync:lipsync@3 is accepted as an alias).")
    output_type: Literal["URL"] = Field(default="URL", description="Only URL output is offered.")
    output_format: OutputFormat = Field(default="MP4", description="MP4, WEBM or MOV.")
    output_quality: StrictInt = Field(default=95, ge=20, le=99, description="Compression quality, 20-99.")
    webhook_url: str | None = Field(
        default=None, alias="webhookURL", description="URL that gets each result."
    )
    delivery_method: Literal["async"] = Field(default="async", description="Only async delivery is offered.")
    upload_endpoint: str | None = Field(
        default=None, description="URL that gets a PUT of the result's bytes."
    )
    safety: Safety | None = None
    ttl: StrictInt | None = Field(default=None, ge=60, description="Seconds the result URL lives (min 60).")
    include_cost: StrictBool = Field(
        default=False, description="Include the task's cost (USD) in the result."
    )
    number_results: StrictInt = Field(default=1, ge=1, le=20, description="Number of variations, 1-20.")
    inputs: Inputs
    speech: Speech | None = None
    settings: Settings | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODEL_ALIASES:
            raise ValueError(f"must be {MODEL_ID} (or its alias sync:lipsync@3), got {value!r}")
        return MODEL_ID

    @field_validator("task_uuid")
    @classmethod
    def _uuid4(cls, value: str | None) -> str | None:
        if value is not None and not is_uuid4(value):
            raise ValueError(f"must be a version-4 UUID, got {value!r}")
        return value

    @field_validator("webhook_url", "upload_endpoint")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return value if value is None else _check_url(value)

    @model_validator(mode="after")
    def _rules(self) -> Self:
        problems = _request_rule_problems(
            has_audio=self.inputs.audio is not None,
            has_speech=self.speech is not None,
            has_segments=bool(self.settings and self.settings.segments is not None),
            has_tts=bool(self.settings and self.settings.tts is not None),
        )
        if problems:
            raise _rules_error(problems)
        return self

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        **kwargs: Any,
    ) -> Self:
        """Validate a wire payload; raise `Sync3ValidationError` listing every problem."""
        try:
            return super().model_validate(
                obj, strict=strict, from_attributes=from_attributes, context=context, **kwargs
            )
        except ValidationError as exc:
            problems = _problems_from_pydantic(exc)
        # Field errors stop pydantic before the request-level rules run: check those on the raw
        # payload too (duplicates are dropped), so the user sees every problem at once.
        if isinstance(obj, dict):
            problems += [Problem(path=p, message=m) for p, m in _raw_request_rule_problems(obj)]
        raise Sync3ValidationError(_dedupe(problems)) from None

    def to_wire(self) -> dict[str, Any]:
        """The JSON body item for this task."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def media_refs(self) -> list[str]:
        """Every media reference of the request (video, audio, segment audio), in order."""
        refs = [self.inputs.video]
        if self.inputs.audio:
            refs.append(self.inputs.audio)
        for seg in (self.settings.segments or []) if self.settings else []:
            refs.append(seg.audio)
        return refs

    def local_refs(self) -> list[str]:
        """The `file://` references that must be uploaded before this request can be submitted."""
        return [ref for ref in self.media_refs() if is_local_ref(ref)]

    def object_refs(self) -> list[str]:
        """The `s3://` references that must be presigned (or uploaded) before this request can be submitted."""
        return [ref for ref in self.media_refs() if is_object_ref(ref)]

    @property
    def effective_sync_mode(self) -> SyncMode:
        return self.settings.sync_mode if self.settings else "cut_off"


def _request_rule_problems(
    *, has_audio: bool, has_speech: bool, has_segments: bool, has_tts: bool
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    given = [
        name
        for name, present in (
            ("inputs.audio", has_audio),
            ("speech", has_speech),
            ("settings.segments", has_segments),
        )
        if present
    ]
    if len(given) != 1:
        detail = "none was given" if not given else f"got {', '.join(given)}"
        problems.append(("", f"provide exactly one of inputs.audio, speech, settings.segments ({detail})"))
    if has_tts and not has_speech:
        problems.append(("settings.tts", "needs speech: tts settings only apply to text-to-speech input"))
    return problems


def _raw_request_rule_problems(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The request-level rules on a raw (possibly broken) payload, looking only at key presence."""
    inputs = payload.get("inputs")
    settings = payload.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    problems = _request_rule_problems(
        has_audio=isinstance(inputs, dict) and inputs.get("audio") is not None,
        has_speech=payload.get("speech") is not None,
        has_segments=settings.get("segments") is not None,
        has_tts=settings.get("tts") is not None,
    )
    segments = settings.get("segments")
    for i, seg in enumerate(segments if isinstance(segments, list) else []):
        if not isinstance(seg, dict):
            continue
        problems += [
            (f"settings.segments[{i}].{field}", message)
            for field, message in _segment_rule_problems(
                _number(seg.get("startTime")),
                _number(seg.get("endTime")),
                has_audio_start="audioStartTime" in seg,
                audio_start=_number(seg.get("audioStartTime", 0)),
                audio_end=_number(seg.get("audioEndTime")),
            )
        ]
    return problems


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- answers


class _Lenient(BaseModel):
    """Answers from the service: unknown fields kept, nothing refused that we do not need."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class ErrorItem(_Lenient):
    """An error of one task, as the service reports it (in `errors[]` or nested in a data item)."""

    code: str = "unknown"
    message: str = ""
    parameter: str | list[str] | None = None
    task_type: str | None = None
    task_uuid: str | None = Field(default=None, alias="taskUUID")
    documentation: str | None = None
    status: str | None = None


class Sync3Result(_Lenient):
    """One finished (or still running) sync-3 result from getResponse or a webhook."""

    task_type: str | None = None
    task_uuid: str = Field(alias="taskUUID")
    status: str | None = None
    video_uuid: str | None = Field(default=None, alias="videoUUID")
    video_url: str | None = Field(default=None, alias="videoURL")
    video_base64_data: str | None = Field(default=None, alias="videoBase64Data")
    video_data_uri: str | None = Field(default=None, alias="videoDataURI")
    seed: int | None = None
    nsfw_content: bool | None = Field(default=None, alias="NSFWContent")
    cost: float | None = None
    progress: float | None = None
    error: ErrorItem | None = None

    @property
    def has_output(self) -> bool:
        return bool(self.video_url or self.video_base64_data or self.video_data_uri)

    @property
    def is_success(self) -> bool:
        # A finished item may lack `status`: having an output is what counts.
        return self.status == "success" or (self.status in (None, "") and self.has_output)

    @property
    def is_error(self) -> bool:
        return self.status == "error" or self.error is not None

    @property
    def is_terminal(self) -> bool:
        return self.is_success or self.is_error

    @property
    def emulated(self) -> bool:
        """True when the local emulator made this result (dub preview, no lip movement)."""
        extra = self.model_extra or {}
        return bool(extra.get("emulated"))


class MediaUpload(_Lenient):
    """The answer to a mediaStorage upload."""

    task_uuid: str | None = Field(default=None, alias="taskUUID")
    media_uuid: str = Field(alias="mediaUUID")
    media_url: str | None = Field(default=None, alias="mediaURL")


class Envelope(_Lenient):
    """`{"data": [...], "errors": [...]}`; either may be missing."""

    data: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[ErrorItem] = Field(default_factory=list)


def parse_result_item(item: dict[str, Any]) -> Sync3Result | ErrorItem:
    """A data item of getResponse or a webhook: a result, or the nested-error failure shape."""
    status = item.get("status")
    nested = item.get("error")
    if status == "error" or isinstance(nested, dict):
        source = dict(nested) if isinstance(nested, dict) else {}
        source.setdefault("taskUUID", item.get("taskUUID"))
        source.setdefault("taskType", item.get("taskType"))
        source.setdefault("message", item.get("message", ""))
        source.setdefault("code", item.get("code", "unknown"))
        source["status"] = "error"
        return ErrorItem.model_validate(source)
    return Sync3Result.model_validate(item)


def parse_webhook_body(body: Any) -> list[Sync3Result | ErrorItem]:
    """A webhook body: a flat item, `{"data": [item]}`, or `{"errors": [...]}`."""
    if isinstance(body, list):
        items: list[Sync3Result | ErrorItem] = []
        for part in body:
            items.extend(parse_webhook_body(part))
        return items
    if not isinstance(body, dict):
        return []
    if "data" in body or "errors" in body:
        envelope = Envelope.model_validate(body)
        parsed: list[Sync3Result | ErrorItem] = [parse_result_item(i) for i in envelope.data]
        parsed.extend(envelope.errors)
        return parsed
    return [parse_result_item(body)]
