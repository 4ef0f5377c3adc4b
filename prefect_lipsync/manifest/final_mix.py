"""Planning the delivered audio: which music-and-effects stem each dub is mixed over, at which layout.

The service returns a video whose audio is the dub (and, between segments, whatever it keeps of the
source's first audio stream, in stereo). With `music_and_effects` the delivered audio is remade after
the checks: the dub where it plays, over the stem, at the video's channel layout. Without one, a
source whose audio the service cannot carry whole (several streams, more than two channels) gets a
warning that says what the output will have and how to choose. Pure: probes in, decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from prefect_lipsync.manifest.plan_context import PlanContext, seconds_text
from prefect_lipsync.manifest.plan_models import FinalMix
from prefect_lipsync.media.info import AudioStream, MediaInfo
from prefect_lipsync.runware.models import Sync3Request

FIELD = ("music_and_effects",)
HOW_TO_NAME = (
    "music_and_effects: me.wav (a file) or music_and_effects: {stream: N} (an audio stream of the video)"
)


@dataclass(frozen=True)
class StemPlan:
    """The manifest's stem, checked once for every language: where it is and the output's layout."""

    stem: str
    stream: int | None
    layout: str
    channels: int
    sample_rate: int
    warnings: list[str] = field(default_factory=list)


def _streams_text(streams: list[AudioStream]) -> str:
    return ", ".join(f"stream {a.index}: {a.layout}" for a in streams)


def _output_format(video: MediaInfo, stem: AudioStream) -> tuple[str, int, int]:
    """(layout, channels, sample rate) of the delivered audio: the video's first audio stream's, else the stem's."""
    main = video.audio[0] if video.audio else stem
    return main.layout, main.channels, main.sample_rate or stem.sample_rate or 48000


def plan_stem(ctx: PlanContext) -> StemPlan | None:
    """The manifest's music-and-effects stem, checked against the probes; None without one (or when broken:
    the problem is in `ctx.problems`)."""
    spec = ctx.manifest.music_and_effects
    video = ctx.media.get(ctx.video_ref)
    if spec is None or video is None or video.video is None:
        return None
    if isinstance(spec, str):
        return _file_stem(ctx, video, ctx.loaded.resolve(spec))
    audio = video.audio
    chosen = next((a for a in audio if a.index == spec.stream), None)
    if chosen is None:
        if not audio:
            message = f"music_and_effects names stream {spec.stream}, but the video has no audio stream"
            fix = "give the stem as a file: music_and_effects: me.wav"
        else:
            what = "its picture" if video.video.index == spec.stream else "not an audio stream of it"
            message = (
                f"music_and_effects names stream {spec.stream} of the video, which is {what} "
                f"(its audio streams: {_streams_text(audio)})"
            )
            fix = "use one of " + ", ".join(f"{{stream: {a.index}}}" for a in audio)
        ctx.problems.append(ctx.loaded.problem(FIELD, message, fix))
        return None
    warnings = []
    if len(audio) > 1 and chosen is audio[0]:
        others = ", ".join(f"{{stream: {a.index}}}" for a in audio[1:])
        warnings.append(
            f"music_and_effects is stream {chosen.index}, the video's first audio stream: it usually holds the "
            f"full mix with the original dialogue, which would then play under the dub; if the M&E is another "
            f"stream, name it ({others})"
        )
    layout, channels, rate = _output_format(video, chosen)
    return StemPlan(ctx.video_ref, chosen.index, layout, channels, rate, warnings)


def _file_stem(ctx: PlanContext, video: MediaInfo, ref: str) -> StemPlan | None:
    info, message, fix = ctx.audio_info(ref)
    if info is None:
        ctx.problems.append(
            ctx.loaded.problem(FIELD, (message or "").replace("audio file", "music_and_effects file", 1), fix)
        )
        return None
    stem = info.audio[0]
    layout, channels, rate = _output_format(video, stem)
    warnings = []
    name = ref.rsplit("/", 1)[-1]
    if stem.layout != layout:
        warnings.append(
            f"music_and_effects {name} is {stem.layout} and the video's audio {layout}: the stem is remixed to "
            f"{layout} (ffmpeg's standard matrix)"
        )
    stem_s = ctx.audio_duration(info)
    video_s = Fraction(repr(video.duration))
    fps = video.video.fps if video.video is not None else None
    tolerance = max(Fraction(2) / fps if fps else Fraction(0), Fraction(1, 10))
    if stem_s + tolerance < video_s:
        warnings.append(
            f"music_and_effects {name} is {seconds_text(stem_s)} and the video {seconds_text(video_s)}: "
            "after the stem ends, only the dub plays"
        )
    elif stem_s > video_s + tolerance:
        warnings.append(
            f"music_and_effects {name} is {seconds_text(stem_s)} and the video {seconds_text(video_s)}: "
            "the stem is cut where the video ends"
        )
    return StemPlan(ref, None, layout, channels, rate, warnings)


def source_audio_warning(ctx: PlanContext) -> str | None:
    """Without a stem: what the output's audio will be when the service cannot carry the source's whole."""
    video = ctx.media.get(ctx.video_ref)
    if video is None or not video.audio:
        return None
    first, rest = video.audio[0], video.audio[1:]
    if rest:
        return (
            f"the video has {len(video.audio)} audio streams ({_streams_text(video.audio)}): the output's audio is "
            f"what the service returns, made from stream {first.index} alone, in stereo; "
            f"{', '.join(f'stream {a.index}' for a in rest)} will not be in it. To mix each dub over the "
            f"music-and-effects stem instead, add music_and_effects: {{stream: {rest[0].index}}} (or a file: "
            "music_and_effects: me.wav)"
        )
    if first.channels > 2:
        return (
            f"the video's audio (stream {first.index}) is {first.layout}: the output's audio is what the service "
            f"returns, in stereo. To deliver {first.layout}, add {HOW_TO_NAME}: each dub is then mixed over that "
            f"stem in {first.layout}"
        )
    return None


def dub_windows(request: Sync3Request, video_duration: float) -> list[tuple[float, float]]:
    """Where the dub plays in the output: each segment (clamped to the video), or the whole video."""
    segments = request.settings.segments if request.settings else None
    if not segments:
        return [(0.0, video_duration)]
    windows = [
        (min(s.start_time, video_duration), min(s.end_time, video_duration))
        for s in sorted(segments, key=lambda s: s.start_time)
    ]
    return [(start, end) for start, end in windows if end > start]


def final_mix_of(stem: StemPlan, request: Sync3Request, video_duration: float) -> FinalMix:
    return FinalMix(
        stem=stem.stem,
        stream=stem.stream,
        layout=stem.layout,
        channels=stem.channels,
        sample_rate=stem.sample_rate,
        dub_windows=dub_windows(request, video_duration),
    )
