"""Where the face and the mouth are: one interface, two finders, and the choice of the face box.

The better finder is dlib's frontal detector with the 68-point landmarks of the
`face-recognition-models` package (installed with the `faces` extra; both ship their model, so
nothing is downloaded): its mouth box comes from the lip landmarks (points 48-67). Without
dlib, OpenCV's Haar cascade finds the face and the mouth box is a fixed part of it
(`mouth_box_of`). `face_finder()` returns the best one that loads.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
GrayFrame = npt.NDArray[np.uint8]

_CASCADE = "haarcascade_frontalface_default.xml"
_MOUTH_POINTS = range(48, 68)


def mouth_box_of(face: Box) -> Box:
    """Where the mouth is in a frontal face box: the middle half across, 60-80 % down."""
    x1, y1, x2, y2 = face
    w, h = x2 - x1, y2 - y1
    return (x1 + w // 4, y1 + h * 3 // 5, x2 - w // 4, y1 + h * 4 // 5)


@dataclass(frozen=True)
class FoundFace:
    """A face in a frame, with its mouth; `method` names the finder (for the report)."""

    face: Box
    mouth: Box
    method: str


class FaceFinder(Protocol):
    """Finds frontal faces in a gray frame, largest first."""

    name: str

    def find(self, gray: GrayFrame) -> list[FoundFace]: ...


class HaarFaceFinder:
    """OpenCV's frontal-face Haar cascade (ships with opencv); the mouth is `mouth_box_of(face)`.
    One search at a time, as dlib's: OpenCV does not promise a cascade is safe to share between threads."""

    name = "opencv-haar"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / _CASCADE))  # type: ignore[attr-defined]
        if self._cascade.empty():
            raise RuntimeError("OpenCV's frontal face cascade could not be loaded")

    def find(self, gray: GrayFrame) -> list[FoundFace]:
        with self._lock:
            faces = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        boxes = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in faces]
        return [FoundFace(b, mouth_box_of(b), self.name) for b in _largest_first(boxes)]


class DlibFaceFinder:
    """dlib's HOG frontal detector; the mouth box spans the 20 lip landmarks, with a margin.

    One search at a time: dlib's detector is not safe to call from two threads at once (it crashed the
    process with a segmentation fault when a batch's manifests analysed their sources together)."""

    name = "dlib-68-landmarks"

    def __init__(self) -> None:
        import dlib  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import face_recognition_models  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self._lock = threading.Lock()
        self._dlib: Any = dlib
        self._detector: Any = dlib.get_frontal_face_detector()
        self._landmarks_file = face_recognition_models.pose_predictor_model_location()
        self._loaded: Any = None

    def _predictor(self) -> Any:
        # The 68-point model is 100 MB: read on the first face found, not on every start.
        if self._loaded is None:
            self._loaded = self._dlib.shape_predictor(self._landmarks_file)
        return self._loaded

    def find(self, gray: GrayFrame) -> list[FoundFace]:
        with self._lock:
            return self._find(np.ascontiguousarray(gray))

    def _find(self, image: GrayFrame) -> list[FoundFace]:
        found = []
        # Upsample small frames once so faces of ~40 px are found; large frames are fine as they are.
        upsample = 1 if max(image.shape[:2]) < 800 else 0
        for rect in self._detector(image, upsample):
            face = _clip((rect.left(), rect.top(), rect.right(), rect.bottom()), image.shape)
            shape = self._predictor()(image, rect)
            xs = [shape.part(i).x for i in _MOUTH_POINTS]
            ys = [shape.part(i).y for i in _MOUTH_POINTS]
            # The lips' box grown by a third of the mouth's width: an open jaw leaves it otherwise.
            pad = max(2, (max(xs) - min(xs)) // 3)
            mouth = _clip((min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad), image.shape)
            found.append(FoundFace(face, mouth, self.name))
        return sorted(found, key=lambda f: -_area(f.face))


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _largest_first(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda b: -_area(b))


def _clip(box: Box, shape: tuple[int, ...]) -> Box:
    h, w = shape[:2]
    x1, y1, x2, y2 = box
    return (max(0, x1), max(0, y1), min(w, x2), min(h, y2))


@lru_cache(maxsize=1)
def face_finder() -> FaceFinder:
    """dlib with its landmarks when installed (`pip install prefect-lipsync[faces]`), else Haar."""
    try:
        return DlibFaceFinder()
    except (ImportError, RuntimeError, OSError):
        return HaarFaceFinder()


#: Frames whose faces `faces_in` remembers per process (a few hundred bytes each).
REMEMBERED_FRAMES = 4096
_remembered: OrderedDict[tuple[str, tuple[int, ...], bytes], tuple[FoundFace, ...]] = OrderedDict()
_remembered_lock = threading.Lock()


def faces_in(gray: GrayFrame, finder: FaceFinder | None = None) -> list[FoundFace]:
    """`finder.find(gray)`, once per process for the same pixels: a batch's manifests share one source,
    and each preflight and check looks for faces in the same frames of it (dlib takes a tenth of a
    second a frame; hashing the frame, a tenth of a millisecond)."""
    finder = finder or face_finder()
    pixels = np.ascontiguousarray(gray)
    key = (finder.name, pixels.shape, hashlib.blake2b(pixels.tobytes(), digest_size=16).digest())
    with _remembered_lock:
        if key in _remembered:
            _remembered.move_to_end(key)
            return list(_remembered[key])
    found = finder.find(gray)
    with _remembered_lock:
        _remembered[key] = tuple(found)
        while len(_remembered) > REMEMBERED_FRAMES:
            _remembered.popitem(last=False)
    return found


def count_faces(gray: GrayFrame, finder: FaceFinder | None = None) -> int:
    """Frontal faces in a gray frame."""
    return len(faces_in(gray, finder))


def find_face(frames: Sequence[GrayFrame], finder: FaceFinder | None = None) -> FoundFace | None:
    """The one face seen in these frames of a shot: the median box of the largest face in each.

    None when no frame shows a face. A median over frames keeps one odd detection from moving the box.
    """
    finder = finder or face_finder()
    seen = [found[0] for frame in frames if (found := faces_in(frame, finder))]
    if not seen:
        return None
    face = tuple(int(v) for v in np.median([f.face for f in seen], axis=0))
    mouth = tuple(int(v) for v in np.median([f.mouth for f in seen], axis=0))
    return FoundFace(face, mouth, seen[0].method)  # type: ignore[arg-type]


def speaker_face_box(boxes: Sequence[Sequence[float]]) -> Box | None:
    """The face box the checks use from a manifest's speaker boxes: the box when there is exactly one.

    With several speakers no single box stands for the face on screen, so none is chosen (the
    checks then look for the face themselves).
    """
    if len(boxes) != 1 or len(boxes[0]) != 4:
        return None
    x1, y1, x2, y2 = (int(v) for v in boxes[0])
    return (x1, y1, x2, y2)
