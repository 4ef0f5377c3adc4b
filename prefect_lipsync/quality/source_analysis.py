"""One analysis of a source per run, shared by pre-flight and the checks of all its languages.

One ffprobe and ONE full decode of the source's video (black stretches, decode errors, where
decoding stops), keeping the gray frames the checks of every language will compare with (the
SSIM samples and pre-flight's face samples), and the face found in them. The source's frozen
stretches matter only when an output shows some, and freezedetect costs about a decode, so they
are found on first need, once per run. Without an analysis, each language's pre-flight and
checks decode the source again.
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from prefect_lipsync.media.errors import MediaError
from prefect_lipsync.quality.analysis import Findings, FrameGrab, analyze
from prefect_lipsync.quality.face import Box, FaceFinder, FoundFace, find_face
from prefect_lipsync.quality.frames import Frame, sample_frames
from prefect_lipsync.quality.models import QualityThresholds, TimeRange
from prefect_lipsync.quality.payload import PlannedSegment, planned_segments
from prefect_lipsync.quality.picture_checks import sample_times
from prefect_lipsync.quality.streams import StreamFacts, probe_streams

FACE_DETECT_WIDTH = 640
MAX_FACE_SAMPLES = 24
FACE_SEARCH_FRAMES = 3


@dataclass
class SourceAnalysis:
    """What the checks need of a source, decoded once."""

    path: Path
    facts: StreamFacts
    findings: Findings  # of a full decode of the video: black, frozen, errors, decoded_until
    frames: dict[int, Frame] = field(default_factory=dict)  # gray, full size, by frame number
    face: FoundFace | None = None  # the face found in the frames (None: none found, or not looked for)
    _frozen: list[TimeRange] | None = field(default=None, repr=False)
    _frozen_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def frozen(self, thresholds: QualityThresholds, timeout: float = 600.0) -> list[TimeRange]:
        """The source's frozen stretches, found on the first call (one more decode per run, not per language)."""
        with self._frozen_lock:  # languages may be checked in parallel threads
            if self._frozen is None:
                found = analyze(self.path, video=True, audio=False, thresholds=thresholds, timeout=timeout)
                self._frozen = found.freeze
            return self._frozen

    def frame_number(self, t: float) -> int:
        """The frame shown at `t` (by its timestamps when the rate varies)."""
        if self.facts.clock is not None:
            return self.facts.clock.shown_at(Fraction(t))
        return int(Fraction(t) * (self.facts.fps or 25))

    def frames_at(self, times: Sequence[float]) -> list[Frame] | None:
        """The frames shown at these times, or None when one of them was not kept."""
        numbers = [self.frame_number(t) for t in times]
        if not all(k in self.frames for k in numbers):
            return None
        return [self.frames[k] for k in numbers]


def face_sample_times(
    segments: Sequence[PlannedSegment], facts: StreamFacts, per_segment: int
) -> tuple[list[float], list[int]]:
    """Pre-flight's face samples: `per_segment` times inside each segment, and the segment of each."""
    spans = [(s.start, s.end) for s in segments] or [(0.0, facts.duration)]
    per = max(1, min(per_segment, MAX_FACE_SAMPLES // len(spans)))
    times: list[float] = []
    owners: list[int] = []
    for i, (start, end) in enumerate(spans[:MAX_FACE_SAMPLES]):
        for k in range(per):
            times.append(
                min(start + (end - start) * (k + 1) / (per + 1), max(0.0, facts.duration - facts.frame_s))
            )
            owners.append(i)
    return times, owners


def check_sample_times(
    segments: Sequence[PlannedSegment], facts: StreamFacts, t: QualityThresholds, output_duration: float
) -> list[float]:
    """The times the SSIM checks compare source and output at (the output may be a little shorter)."""
    return sample_times(list(segments), min(output_duration, facts.duration), t.ssim_samples_max)


def detection_frame(gray: Frame) -> tuple[Frame, float]:
    """A copy at most FACE_DETECT_WIDTH wide, and the factor back to full size."""
    width = gray.shape[1]
    if width <= FACE_DETECT_WIDTH:
        return gray, 1.0
    k = FACE_DETECT_WIDTH / width
    size = (FACE_DETECT_WIDTH, max(2, round(gray.shape[0] * k)))
    small: Frame = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return small, 1 / k


def find_face_in(frames: Sequence[Frame], finder: FaceFinder | None = None) -> FoundFace | None:
    """The face in a few of `frames` (searched on smaller copies), as a box of the full frame."""
    if not frames:
        return None
    step = max(1, len(frames) // FACE_SEARCH_FRAMES)
    chosen = list(frames)[::step][:FACE_SEARCH_FRAMES]
    small = [detection_frame(f) for f in chosen]
    found = find_face([s for s, _ in small], finder)
    if found is None:
        return None
    back = small[0][1]

    def full(box: Box) -> Box:
        x1, y1, x2, y2 = (round(v * back) for v in box)
        return (x1, y1, x2, y2)

    return FoundFace(full(found.face), full(found.mouth), found.method)


def analyze_source(
    source: Path,
    *,
    request_payloads: Iterable[Mapping[str, Any]] = (),
    thresholds: QualityThresholds | None = None,
    look_for_face: bool = True,
    timeout: float = 600.0,
) -> SourceAnalysis:
    """Probe and decode `source` once, keeping the frames the checks of these requests will need.

    Raises MediaError when the source cannot be probed or decoded at all; pre-flight without an
    analysis then reports why.
    """
    t = thresholds or QualityThresholds()
    source = Path(source)
    facts = probe_streams(source, timeout=timeout)
    times: set[float] = set()
    for payload in request_payloads:
        segments = planned_segments(payload, facts.duration)
        times.update(check_sample_times(segments, facts, t, facts.duration))
        times.update(face_sample_times(segments, facts, t.face_samples_per_segment)[0])
    if not times:
        times.update(check_sample_times([], facts, t, facts.duration))
    fps = facts.fps
    if facts.video_count == 0 or not (fps and facts.width and facts.height):
        return SourceAnalysis(source, facts, Findings())
    size = (facts.width, facts.height)
    clock = facts.clock
    if clock is not None:  # a variable frame rate: frames by their timestamps
        numbers = sorted({clock.shown_at(Fraction(x)) for x in times})
        middles = tuple(float((clock.start_of(k) + clock.start_of(k + 1)) / 2) for k in numbers)
    else:
        numbers = sorted({int(Fraction(x) * fps) for x in times})
        middles = tuple(float((k + Fraction(1, 2)) / fps) for k in numbers)  # a time inside each frame
    with tempfile.TemporaryDirectory(prefix="lipsync-source-") as folder:
        grab = FrameGrab(times=middles, fps=fps, size=size, reference=None, folder=Path(folder), clock=clock)
        found = analyze(
            source, video=True, audio=False, thresholds=t, grab=grab, freeze=False, timeout=timeout
        )
    kept = found.frames
    if len(kept) != len(numbers):
        # A variable frame rate selects more or fewer frames than asked: seek to each instead.
        kept = sample_frames(source, middles, size=size, fps=fps, clock=clock, timeout=timeout)
    found.frames = []
    analysis = SourceAnalysis(source, facts, found, dict(zip(numbers, kept, strict=False)))
    if look_for_face:
        analysis.face = find_face_in(kept)
    return analysis


#: Sources whose analysis a process keeps: a batch's manifests often share a source, and each
#: analysis holds its sample frames in memory, so the oldest is let go past this many.
SHARED_ANALYSES_MAX = 4
_shared: OrderedDict[tuple[str, int, int, str], SourceAnalysis | None] = OrderedDict()
_shared_locks: dict[tuple[str, int, int, str], threading.Lock] = {}
_shared_guard = threading.Lock()


def shared_source_analysis(
    source: Path,
    *,
    request_payloads: Iterable[Mapping[str, Any]] = (),
    thresholds: QualityThresholds | None = None,
    timeout: float = 600.0,
) -> SourceAnalysis | None:
    """One analysis of `source` per process while its content is unchanged (None: it cannot be decoded).

    Keyed by the file's path, size and modification time and the thresholds, not by the requests:
    pre-flight and the checks of every job on the same source share it, whichever step comes first.
    The first caller's `request_payloads` choose the frames kept; a later job whose frames were not
    kept has its checks seek them in the source (`SourceAnalysis.frames_at` answers None).
    """
    t = thresholds or QualityThresholds()
    stat = Path(source).stat()
    key = (str(Path(source).resolve()), stat.st_size, stat.st_mtime_ns, t.model_dump_json())
    with _shared_guard:
        lock = _shared_locks.setdefault(key, threading.Lock())
    with lock:  # two languages of one source wait for one decode, not two
        with _shared_guard:
            if key in _shared:
                _shared.move_to_end(key)
                return _shared[key]
        try:
            analysis: SourceAnalysis | None = analyze_source(
                Path(source), request_payloads=request_payloads, thresholds=t, timeout=timeout
            )
        except MediaError:
            analysis = None  # pre-flight says why, from its own probe
        with _shared_guard:
            _shared[key] = analysis
            while len(_shared) > SHARED_ANALYSES_MAX:
                old, _ = _shared.popitem(last=False)
                _shared_locks.pop(old, None)
        return analysis
