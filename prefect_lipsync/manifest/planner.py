"""The planner: a loaded manifest and probe results in, one sync-3 request per language out.

Pure: it reads no file and starts no process (subtitle files were read by the loader, media by
the probe; content hashes come from `hash_fn`). Times are exact `Fraction`s until the very end,
where each is snapped to a frame and then to the 0.01 s grid (see `frames`).

Per language with lines: sort; clamp to the video; refuse overlaps of one speaker, and of two
speakers by more than two frames (trim smaller ones); merge close neighbours of one speaker and
one audio file when their audio is contiguous; fit each audio to its slot (shrink the slot,
extend it into the following gap, speed the audio up to `max_tempo`, or truncate with a
warning); widen or drop segments shorter than `min_segment`; snap; build the request.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from prefect_lipsync.manifest.errors import ManifestError, ManifestProblem
from prefect_lipsync.manifest.frames import (
    frame_at,
    frame_start_on_grid,
    grid_float,
    grid_floor,
    grid_round,
)
from prefect_lipsync.manifest.loader import LoadedManifest, PlanLine, is_url
from prefect_lipsync.manifest.plan_models import (
    DEFAULT_PRICE_PER_SECOND,
    DroppedLine,
    Plan,
    PlannedAudioOp,
    PlannedJob,
)
from prefect_lipsync.manifest.schema import LanguageSpec, SpeakerTarget
from prefect_lipsync.manifest.timecode import TimeFormatError, format_seconds, is_smpte, parse_time
from prefect_lipsync.media.audio_ops import AudioOp
from prefect_lipsync.media.audio_ops import output_name as op_output_name
from prefect_lipsync.media.cache import default_cache_dir
from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.media.info import MediaInfo
from prefect_lipsync.runware.models import Sync3Request, Sync3ValidationError

#: Two speakers may overlap by this many frames; the earlier line is trimmed.
TRIM_FRAMES = 2
#: An audio crop may end this far past the probed end of its file (container durations are rounded).
AUDIO_END_SLACK = Fraction(5, 100)
#: Tempo factors are written with four decimals, rounded up so the sped-up audio fits its slot.
_TEMPO_STEPS = 10_000

HashFn = Callable[[str], str]


def _s(value: Fraction) -> str:
    return format_seconds(value, 3) + " s"


def default_audio_ops_dir() -> Path:
    """Where rendered audio ops go unless a plan says otherwise: <cache dir>/audio-ops."""
    return default_cache_dir() / "audio-ops"


def _name_hash(path: str) -> str:
    """Stand-in content hash when no hash function is given: stable, but keyed on the name."""
    return hashlib.sha256(f"name:{path}".encode()).hexdigest()


def media_uri(resolved: str) -> str:
    """A resolved reference as the request names it: URLs as they are, local files as file:// URIs."""
    return resolved if is_url(resolved) else Path(resolved).as_uri()


@dataclass(frozen=True)
class _Video:
    fps: Fraction | None
    frames: int | None
    width: int
    height: int
    duration: float

    @property
    def end(self) -> Fraction | None:
        if self.fps is None or self.frames is None:
            return None
        return Fraction(self.frames) / self.fps


@dataclass
class _Slot:
    """One future segment: its lines, where it plays in the video, which audio it plays."""

    lines: list[PlanLine]
    speaker: str | None
    audio_ref: str
    audio_duration: Fraction
    start: Fraction
    end: Fraction
    a_start: Fraction
    a_end: Fraction
    tempo: Fraction | None = None  # set when an audio op speeds it up (or truncates at max tempo)

    @property
    def ids(self) -> list[str]:
        return [pl.id for pl in self.lines]

    @property
    def label(self) -> str:
        return "+".join(self.ids)

    @property
    def played(self) -> Fraction:
        """Seconds of audio this slot plays (after the tempo change)."""
        span = self.a_end - self.a_start
        return span / self.tempo if self.tempo else span


@dataclass
class _Job:
    """What one language collects while it is planned."""

    code: str
    spec: LanguageSpec
    warnings: list[str] = field(default_factory=list)
    dropped: list[DroppedLine] = field(default_factory=list)
    ops: list[PlannedAudioOp] = field(default_factory=list)
    op_paths: set[str] = field(default_factory=set)

    def drop(self, slot_or_line: _Slot | PlanLine, reason: str) -> None:
        ids = slot_or_line.ids if isinstance(slot_or_line, _Slot) else [slot_or_line.id]
        for line_id in ids:
            self.dropped.append(DroppedLine(line_id=line_id, reason=reason))
        self.warnings.append(f"line {'+'.join(ids)} dropped: {reason}")


class _Planner:
    def __init__(
        self,
        loaded: LoadedManifest,
        media: Mapping[str, MediaInfo],
        media_errors: Mapping[str, MediaError],
        hash_fn: HashFn,
        ops_dir: Path,
        number_results: int = 1,
    ) -> None:
        self.number_results = number_results
        self.loaded = loaded
        self.manifest = loaded.manifest
        self.media = media
        self.media_errors = media_errors
        self.hash_fn = hash_fn
        self.ops_dir = ops_dir
        self.problems: list[ManifestProblem] = list(loaded.problems)
        self.video_ref = loaded.resolve(self.manifest.video)
        self.video = self._video()

    # ------------------------------------------------------------ media

    def _media_problem(self, ref: str, what: str) -> tuple[str, str]:
        err = self.media_errors.get(ref)
        if err is None:
            return f"{what} {ref} was not probed", "probe every file the manifest names before planning"
        name = type(err).__name__
        reason = err.message
        if name in ("MediaNotFound", "NotAFile"):
            fix = f"check the path (relative to the manifest's folder {self.loaded.base_dir})"
        elif name == "FFmpegTimeout":
            fix = "check that the file or URL is reachable and not huge, or raise the probe timeout"
        else:
            fix = f"replace {what} with a readable media file (try: ffprobe {ref})"
        return f"{what} {ref}: {reason}", fix

    def _video(self) -> _Video | None:
        info = self.media.get(self.video_ref)
        if info is None:
            message, fix = self._media_problem(self.video_ref, "video")
            self.problems.append(self.loaded.problem(("video",), message, fix))
            return None
        if info.video is None:
            self.problems.append(
                self.loaded.problem(
                    ("video",),
                    f"video {self.video_ref} has no video stream (an audio-only file?)",
                    "point `video` at the source video with the faces to lip-sync",
                )
            )
            return None
        stream = info.video
        frames = stream.frame_count
        if frames is None and stream.fps > 0:
            frames = round(Fraction(repr(stream.duration or info.duration)) * stream.fps)
        return _Video(
            fps=stream.fps if stream.fps > 0 else None,
            frames=frames,
            width=stream.width,
            height=stream.height,
            duration=info.duration,
        )

    def _audio_info(self, ref: str) -> tuple[MediaInfo | None, str | None, str | None]:
        """(info, message, fix): the info of an audio file, or why it cannot be used."""
        info = self.media.get(ref)
        if info is None:
            message, fix = self._media_problem(ref, "audio file")
            return None, message, fix
        if not info.audio:
            return (
                None,
                f"audio file {ref} has no audio stream",
                "give a file with sound (WAV, MP3, M4A, ...)",
            )
        return info, None, None

    @staticmethod
    def _audio_duration(info: MediaInfo) -> Fraction:
        seconds = info.audio[0].duration or info.duration
        return Fraction(repr(float(seconds)))

    # ------------------------------------------------------------ all languages

    def run(self, price_per_second: float) -> Plan:
        jobs: list[PlannedJob] = []
        for code, spec in self.manifest.languages.items():
            if code in self.loaded.broken:
                continue
            job = _Job(code=code, spec=spec)
            planned = self._plan_language(job)
            if planned is not None:
                jobs.append(planned)
        if self.problems:
            raise ManifestError(self.problems)
        seconds = sum(job.video_duration * job.request.number_results for job in jobs)
        return Plan(
            jobs=jobs,
            estimated_seconds=round(seconds, 3),
            estimated_cost_usd=round(seconds * price_per_second, 4),
            price_per_second=price_per_second,
        )

    def _plan_language(self, job: _Job) -> PlannedJob | None:
        spec = job.spec
        mode = spec.sync_mode or self.manifest.defaults.sync_mode
        settings: dict[str, Any] = {"syncMode": mode}
        payload: dict[str, Any] = {"inputs": {"video": media_uri(self.video_ref)}, "settings": settings}
        if self.number_results != 1:
            payload["numberResults"] = self.number_results
        segment_lines: list[list[str]] = []
        before = len(self.problems)
        if spec.kind in ("lines", "subtitles"):
            slots = self._plan_lines(job)
            if slots is None or self.video is None:
                return None
            if not slots:
                self.problems.append(
                    self.loaded.problem(
                        ("languages", job.code),
                        "no line is left to lip-sync (every line was dropped: "
                        + "; ".join(job.warnings)
                        + ")",
                        "check the lines' times against the video's length and min_segment",
                    )
                )
                return None
            settings["segments"] = [self._segment(job, slot) for slot in slots]
            segment_lines = [slot.ids for slot in slots]
            detection = self._detection_for_slots(job, slots)
        elif spec.kind == "audio":
            assert spec.audio is not None
            ref = self.loaded.resolve(spec.audio)
            info, message, fix = self._audio_info(ref)
            if info is None:
                self.problems.append(
                    self.loaded.problem(("languages", job.code, "audio"), message or "", fix)
                )
                return None
            payload["inputs"]["audio"] = media_uri(ref)
            if self.video is not None:
                self._check_track_length(job, self._audio_duration(info), mode)
            detection = self._detection_whole(job)
        else:
            assert spec.speech is not None
            payload["speech"] = {"text": spec.speech.text, "voice": spec.speech.voice}
            detection = self._detection_whole(job)
        if detection is not None:
            settings["activeSpeakerDetection"] = detection
        if self.video is None or len(self.problems) > before:
            return None
        if self.video.fps is not None and self.video.end is not None and self._vfr():
            job.warnings.append("the video has a variable frame rate: frame times use its nominal rate")
        try:
            request = Sync3Request.model_validate(payload)
        except Sync3ValidationError as exc:
            for p in exc.problems:
                self.problems.append(
                    self.loaded.problem(
                        ("languages", job.code),
                        f"the planned request is invalid at {p.path}: {p.message}",
                        "report this as a bug in the planner, with the manifest",
                    )
                )
            return None
        return PlannedJob(
            language=job.code,
            kind=spec.kind,
            request=request,
            warnings=job.warnings,
            dropped_lines=job.dropped,
            audio_ops=job.ops,
            segment_lines=segment_lines,
            output_name=self._output_name(job.code),
            video_duration=self.video.duration,
        )

    def _vfr(self) -> bool:
        info = self.media.get(self.video_ref)
        return bool(info and info.video and info.video.variable_frame_rate)

    def _output_name(self, code: str) -> str:
        base = self.manifest.name
        if not base:
            path = urlsplit(self.video_ref).path if is_url(self.video_ref) else self.video_ref
            base = PurePosixPath(path.replace("\\", "/")).stem or "video"
        return f"{base}.{code}.mp4"

    def _check_track_length(self, job: _Job, audio: Fraction, mode: str) -> None:
        assert self.video is not None
        video = Fraction(repr(self.video.duration))
        tolerance = max(Fraction(2) / self.video.fps if self.video.fps else Fraction(0), Fraction(1, 10))
        if abs(audio - video) > tolerance:
            job.warnings.append(
                f"the dub track is {_s(audio)} and the video {_s(video)}: sync_mode {mode} decides what happens"
            )

    # ------------------------------------------------------------ lines -> slots

    def _time(self, pl: PlanLine, name: str, value: object, *, audio: bool = False) -> Fraction | None:
        fps = self.video.fps if self.video is not None else None
        try:
            if audio and is_smpte(value):
                raise TimeFormatError(
                    f"{name} {value!r} is a SMPTE timecode, but an audio file has no frames",
                    "give the time in the audio file in seconds or HH:MM:SS.mmm",
                )
            return parse_time(value, fps)
        except TimeFormatError as exc:
            message = str(exc)
            if self.video is None and is_smpte(value):
                message += " (see the problem with `video`)"
            self.problems.append(self.loaded.line_problem(pl, name, message, exc.fix))
            return None

    def _slot_of(self, job: _Job, pl: PlanLine) -> _Slot | None:
        line = pl.line
        start = self._time(pl, "start", line.start)
        end = self._time(pl, "end", line.end)
        a_start_raw = (
            self._time(pl, "audio_start", line.audio_start, audio=True)
            if line.audio_start is not None
            else Fraction(0)
        )
        a_end_raw = (
            self._time(pl, "audio_end", line.audio_end, audio=True) if line.audio_end is not None else None
        )
        ok = start is not None and end is not None and a_start_raw is not None
        ok = ok and (line.audio_end is None or a_end_raw is not None)
        if start is not None and end is not None and end <= start:
            self.problems.append(
                self.loaded.line_problem(
                    pl, "end", f"end {_s(end)} is not after start {_s(start)}", "make end later than start"
                )
            )
            ok = False
        ref = self.loaded.resolve(line.audio)
        info, message, fix = self._audio_info(ref)
        if info is None:
            self.problems.append(self.loaded.line_problem(pl, "audio", message or "", fix))
            return None
        duration = self._audio_duration(info)
        a_start = a_start_raw if a_start_raw is not None else Fraction(0)
        a_end = a_end_raw if a_end_raw is not None else duration
        if a_start_raw is not None and a_start >= duration:
            self.problems.append(
                self.loaded.line_problem(
                    pl,
                    "audio_start",
                    f"audio_start {_s(a_start)} is at or past the end of {line.audio} ({_s(duration)})",
                    f"use an audio_start below {_s(duration)}",
                )
            )
            ok = False
        if a_end_raw is not None:
            if a_end > duration + AUDIO_END_SLACK:
                self.problems.append(
                    self.loaded.line_problem(
                        pl,
                        "audio_end",
                        f"audio_end {_s(a_end)} is past the end of {line.audio} ({_s(duration)})",
                        f"use an audio_end of at most {_s(duration)}, or leave it out to play to the end",
                    )
                )
                ok = False
            a_end = min(a_end, duration)
            if a_end <= a_start:
                self.problems.append(
                    self.loaded.line_problem(
                        pl,
                        "audio_end",
                        f"audio_end {_s(a_end)} is not after audio_start {_s(a_start)}",
                        "make audio_end later than audio_start",
                    )
                )
                ok = False
        if not ok or start is None or end is None:
            return None
        return _Slot(
            lines=[pl],
            speaker=pl.speaker,
            audio_ref=ref,
            audio_duration=duration,
            start=start,
            end=end,
            a_start=a_start,
            a_end=a_end,
        )

    def _plan_lines(self, job: _Job) -> list[_Slot] | None:
        lines = self.loaded.lines.get(job.code, [])
        slots = [s for s in (self._slot_of(job, pl) for pl in lines) if s is not None]
        video = self.video
        if video is None or video.fps is None or video.end is None:
            return None  # problems are reported; with no frame rate nothing more can be checked
        complete = len(slots) == len(lines)  # else problems are reported: check the rest all the same
        fps, video_end = video.fps, video.end
        kept: list[_Slot] = []
        for slot in slots:
            if slot.start >= video_end:
                job.drop(slot, f"starts at {_s(slot.start)}, after the video's end ({_s(video_end)})")
                continue
            if slot.end > video_end:
                job.warnings.append(
                    f"line {slot.label} ends at {_s(slot.end)}, after the video's end: cut to {_s(video_end)}"
                )
                slot.end = video_end
            kept.append(slot)
        kept.sort(key=lambda s: (s.start, s.end, s.lines[0].position))
        if not self._resolve_overlaps(job, kept, fps) or not complete:
            return None
        defaults = self.manifest.defaults
        merged = self._merge(kept, Fraction(repr(defaults.merge_gap)), Fraction(repr(defaults.min_segment)))
        self._fit(job, merged, video_end, Fraction(repr(defaults.max_tempo)))
        widened = self._min_segment(job, merged, video_end, Fraction(repr(defaults.min_segment)))
        return self._snap(job, widened, fps, video.frames or 0)

    def _resolve_overlaps(self, job: _Job, slots: list[_Slot], fps: Fraction) -> bool:
        """Refuse overlaps of one speaker, and of two by more than TRIM_FRAMES; trim the rest."""
        ok = True
        limit = Fraction(TRIM_FRAMES) / fps
        open_slots: list[_Slot] = []
        for slot in slots:
            open_slots = [o for o in open_slots if o.end > slot.start]
            for other in open_slots:
                overlap = min(other.end, slot.end) - slot.start
                pl = slot.lines[0]
                if other.speaker == slot.speaker:
                    who = f"speaker {slot.speaker}" if slot.speaker else "the one speaker"
                    self.problems.append(
                        self.loaded.line_problem(
                            pl,
                            "start",
                            f"overlaps line {other.label} ({_s(other.start)}-{_s(other.end)}) of {who} by "
                            f"{_s(overlap)}: one speaker says one line at a time",
                            f"start line {pl.id} at {_s(other.end)} or later, or join the two lines",
                        )
                    )
                    ok = False
                elif overlap > limit or slot.end <= other.end:
                    frames = math.ceil(overlap * fps)
                    self.problems.append(
                        self.loaded.line_problem(
                            pl,
                            "start",
                            f"line {pl.id} (speaker {slot.speaker}) overlaps line {other.label} (speaker "
                            f"{other.speaker}) by {_s(overlap)} ({frames} frames); one audio plays at a time",
                            f"move line {pl.id} or line {other.label} so that they overlap by at most "
                            f"{TRIM_FRAMES} frames, or put each speaker in a separate job",
                        )
                    )
                    ok = False
                else:
                    job.warnings.append(
                        f"line {other.label} (speaker {other.speaker}) overlapped line {pl.id} (speaker "
                        f"{slot.speaker}) by {math.ceil(overlap * fps)} frame(s): trimmed its end to {_s(slot.start)}"
                    )
                    other.end = slot.start
            open_slots.append(slot)
        return ok

    @staticmethod
    def _merge(slots: list[_Slot], merge_gap: Fraction, min_segment: Fraction) -> list[_Slot]:
        """Join neighbours of one speaker and one audio file whose audio is contiguous and close."""
        out: list[_Slot] = []
        for slot in slots:
            prev = out[-1] if out else None
            if prev is not None and prev.speaker == slot.speaker and prev.audio_ref == slot.audio_ref:
                short = min(prev.end - prev.start, slot.end - slot.start) < min_segment
                limit = max(merge_gap, min_segment) if short else merge_gap
                gap = slot.start - prev.end
                audio_gap = slot.a_start - prev.a_end
                if 0 <= gap < limit and 0 <= audio_gap <= limit:
                    prev.lines.extend(slot.lines)
                    prev.end = slot.end
                    prev.a_end = slot.a_end
                    continue
            out.append(slot)
        return out

    def _fit(self, job: _Job, slots: list[_Slot], video_end: Fraction, max_tempo: Fraction) -> None:
        """Make each slot as long as its audio: shrink, extend into the next gap, speed up, or truncate."""
        for i, slot in enumerate(slots):
            next_start = slots[i + 1].start if i + 1 < len(slots) else video_end
            length = slot.end - slot.start
            audio = slot.a_end - slot.a_start
            room = next_start - slot.start
            if audio <= room:
                slot.end = slot.start + audio  # shorter audio shrinks the slot; longer takes the gap
                continue
            local = not is_url(slot.audio_ref)
            needed = audio / room
            tempo = Fraction(math.ceil(needed * _TEMPO_STEPS), _TEMPO_STEPS)
            if local and tempo <= max_tempo:
                slot.tempo = tempo
                slot.end = slot.start + slot.played
                job.warnings.append(
                    f"line {slot.label}: audio of {_s(audio)} sped up {float(tempo):.4g}x to fit its "
                    f"{_s(room)} slot"
                )
                continue
            use_tempo = max_tempo if local and max_tempo > 1 else None
            kept = room * use_tempo if use_tempo else room
            lost = audio - kept
            slot.tempo = use_tempo
            slot.a_end = slot.a_start + kept
            slot.end = slot.start + room
            how = f" even at {float(max_tempo):.4g}x" if use_tempo else ""
            job.warnings.append(
                f"speech truncated: line {slot.label} needs {_s(audio)} of audio but has {_s(room)} up to the "
                f"{'next line' if i + 1 < len(slots) else 'end of the video'}{how}; its last {_s(lost)} "
                f"are cut (slot was {_s(length)})"
            )

    def _min_segment(
        self, job: _Job, slots: list[_Slot], video_end: Fraction, min_segment: Fraction
    ) -> list[_Slot]:
        """Widen slots shorter than min_segment into free time around them, or drop them."""
        out: list[_Slot] = []
        for i, slot in enumerate(slots):
            length = slot.end - slot.start
            if length >= min_segment:
                out.append(slot)
                continue
            prev_end = out[-1].end if out else Fraction(0)
            next_start = slots[i + 1].start if i + 1 < len(slots) else video_end
            need = min_segment - length
            after = min(need, next_start - slot.end)
            before = min(need - after, slot.start - prev_end)
            if after + before < need:
                job.drop(
                    slot,
                    f"{_s(length)} long, shorter than min_segment ({_s(min_segment)}), with no free time "
                    "around it to widen into",
                )
                continue
            slot.end += after
            slot.start -= before
            job.warnings.append(
                f"line {slot.label} ({_s(length)}) is shorter than min_segment: widened to "
                f"{_s(slot.start)}-{_s(slot.end)}; its audio stays {_s(slot.played)}"
            )
            out.append(slot)
        return out

    def _snap(self, job: _Job, slots: list[_Slot], fps: Fraction, frames: int) -> list[_Slot]:
        """Snap every slot to frames and the 0.01 s grid, keeping the order and the gaps."""
        starts = [min(frame_at(s.start, fps), frames) for s in slots]
        out: list[_Slot] = []
        for i, slot in enumerate(slots):
            k_start = starts[i]
            k_end = min(frame_at(slot.end, fps), frames)
            limit = starts[i + 1] if i + 1 < len(slots) else frames
            if k_end <= k_start:
                if k_start + 1 > limit:
                    job.drop(slot, f"shorter than one frame at {_s(slot.start)} once snapped to frames")
                    continue
                k_end = k_start + 1
            slot.start = frame_start_on_grid(k_start, fps)
            # The video's last frame ends at frames/fps; a grid step past it would fall outside the video.
            slot.end = (
                frame_start_on_grid(k_end, fps) if k_end < frames else grid_floor(Fraction(frames) / fps)
            )
            out.append(slot)
        return out

    # ------------------------------------------------------------ slots -> segments

    def _segment(self, job: _Job, slot: _Slot) -> dict[str, Any]:
        if slot.tempo is None:
            audio_uri = media_uri(slot.audio_ref)
            a_start = grid_round(slot.a_start)
            a_end = min(grid_round(slot.a_end), grid_floor(slot.audio_duration))
        else:
            op = AudioOp(
                source=slot.audio_ref,
                start=float(slot.a_start),
                end=float(slot.a_end),
                tempo=float(slot.tempo),
            )
            key = op.content_key(self.hash_fn(slot.audio_ref))
            path = self.ops_dir / op_output_name(key)
            audio_uri = path.as_uri()
            if str(path) not in job.op_paths:  # two slots may need the very same audio
                job.op_paths.add(str(path))
                job.ops.append(
                    PlannedAudioOp(
                        op=op, content_key=key, output_path=str(path), output_uri=audio_uri, line_ids=slot.ids
                    )
                )
            a_start = Fraction(0)
            a_end = grid_floor(slot.played)
        if a_end <= a_start:  # a crop under 0.01 s: send the smallest one the grid allows
            a_end = a_start + Fraction(1, 100)
        return {
            "startTime": grid_float(slot.start),
            "endTime": grid_float(slot.end),
            "audio": audio_uri,
            "audioStartTime": grid_float(a_start),
            "audioEndTime": grid_float(a_end),
        }

    # ------------------------------------------------------------ speaker targets

    def _target_problem(self, name: str, target: SpeakerTarget) -> ManifestProblem | None:
        video = self.video
        if video is None:
            return None
        if target.point is not None:
            p = target.point
            if p.x > video.width or p.y > video.height:
                return self._speaker_problem(
                    name,
                    "point",
                    f"point ({p.x:g}, {p.y:g}) is outside the {video.width}x{video.height} video",
                    f"give x in 0-{video.width} and y in 0-{video.height}",
                )
            if video.frames is not None and p.frame >= video.frames:
                return self._speaker_problem(
                    name,
                    "point",
                    f"frame {p.frame} does not exist: the video has {video.frames} frames",
                    f"use a frame from 0 to {video.frames - 1}",
                )
        if target.box is not None:
            _, _, x2, y2 = target.box
            if x2 > video.width or y2 > video.height:
                return self._speaker_problem(
                    name,
                    "box",
                    f"box {target.box} reaches outside the {video.width}x{video.height} video",
                    f"keep x2 <= {video.width} and y2 <= {video.height}",
                )
        return None

    def _speaker_problem(self, name: str, key: str, message: str, fix: str) -> ManifestProblem:
        problem = self.loaded.problem(("speakers", name, key), f"speaker {name}: {message}", fix)
        return problem.model_copy(update={"language": None})

    def _detection_one(self, name: str, track_frames: list[tuple[int, int]] | None) -> dict[str, Any] | None:
        speakers = self.manifest.speakers or {}
        target = speakers[name]
        problem = self._target_problem(name, target)
        if problem is not None:
            self.problems.append(problem)
            return None
        if target.point is not None:
            return {"coordinates": [target.point.x, target.point.y], "frameNumber": target.point.frame}
        if target.box is not None:
            frames = self.video.frames if self.video is not None and self.video.frames else 0
            return {"boundingBoxes": [list(target.box)] * frames}
        return {"autoDetect": True}

    def _detection_whole(self, job: _Job) -> dict[str, Any] | None:
        speakers = self.manifest.speakers
        if not speakers:
            return {"autoDetect": True}
        name = job.spec.speaker
        if name is None and len(speakers) == 1:
            name = next(iter(speakers))
        if name is None:
            job.warnings.append(
                f"{len(speakers)} speakers are defined but one track plays over the whole video: sync-3 "
                "detects the active speaker (set `speaker:` on the language to target one)"
            )
            return {"autoDetect": True}
        name = next((n for n in speakers if n.casefold() == name.casefold()), name)
        return self._detection_one(name, None)

    def _detection_for_slots(self, job: _Job, slots: list[_Slot]) -> dict[str, Any] | None:
        speakers = self.manifest.speakers
        if not speakers:
            return {"autoDetect": True}
        used = list(dict.fromkeys(s.speaker for s in slots if s.speaker is not None))
        if len(used) == 1:
            return self._detection_one(used[0], None)
        targets = {name: speakers[name] for name in used}
        if all(t.kind == "auto" for t in targets.values()):
            return {"autoDetect": True}
        not_boxes = [name for name, t in targets.items() if t.box is None]
        if not_boxes:
            self.problems.append(
                self.loaded.problem(
                    ("speakers",),
                    f"language {job.code} has lines of {len(used)} speakers ({', '.join(used)}); sync-3 takes one "
                    "point, or a per-frame box track, so every one of them needs a box "
                    f"({', '.join(not_boxes)} has none)",
                    f"give {', '.join(not_boxes)} a box: [x1, y1, x2, y2], or make every speaker auto: true",
                    language=job.code,
                )
            )
            return None
        bad = [p for p in (self._target_problem(n, t) for n, t in targets.items()) if p is not None]
        if bad:
            self.problems.extend(bad)
            return None
        assert self.video is not None and self.video.fps is not None
        fps, frames = self.video.fps, self.video.frames or 0
        track: list[list[float] | None] = [None] * frames
        for slot in slots:
            assert slot.speaker is not None
            box = list(speakers[slot.speaker].box or [])
            first = math.floor(slot.start * fps)
            last = min(math.floor(slot.end * fps), frames)
            for k in range(first, last):
                track[k] = box
        return {"boundingBoxes": track}


def plan_manifest(
    loaded: LoadedManifest,
    media: Mapping[str, MediaInfo],
    *,
    media_errors: Mapping[str, MediaError] | None = None,
    price_per_second: float = DEFAULT_PRICE_PER_SECOND,
    number_results: int = 1,
    hash_fn: HashFn | None = None,
    audio_ops_dir: str | Path | None = None,
) -> Plan:
    """Plan one sync-3 request per language of `loaded`; raise ManifestError with every problem.

    `media` maps each resolved reference (`loaded.media_refs()`) to its probe; `media_errors`
    the ones that failed to probe. `hash_fn(path)` gives a file's content hash for the audio ops'
    keys (load_and_plan passes a SHA-256 of the file; without it the key uses the path).
    `audio_ops_dir` is where the ops will be rendered (default: the cache dir's audio-ops).
    """
    if not 1 <= number_results <= 20:
        raise ValueError("number_results must be 1-20")
    planner = _Planner(
        loaded,
        media,
        media_errors or {},
        hash_fn or _name_hash,
        Path(audio_ops_dir) if audio_ops_dir is not None else default_audio_ops_dir(),
        number_results,
    )
    return planner.run(price_per_second)
