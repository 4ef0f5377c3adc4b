"""Faces found once per process for the same pixels (`faces_in`): the preflight of every manifest of a
batch looks at the same frames of their shared source."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image

from prefect_lipsync.quality import face as face_module
from prefect_lipsync.quality.face import FaceFinder, FoundFace, count_faces, face_finder, faces_in, find_face


class CountingFinder:
    """A real finder that counts the frames it is asked about."""

    def __init__(self, finder: FaceFinder) -> None:
        self.inner = finder
        self.name = finder.name
        self.calls = 0

    def find(self, gray: np.ndarray) -> list[FoundFace]:  # type: ignore[type-arg]
        self.calls += 1
        return self.inner.find(gray)


@pytest.fixture
def astronaut() -> np.ndarray:  # type: ignore[type-arg]
    from skimage import data  # a photograph shipped with scikit-image (no download)

    return np.asarray(Image.fromarray(data.astronaut()).convert("L"))


@pytest.fixture(autouse=True)
def nothing_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(face_module, "_remembered", type(face_module._remembered)())


def test_the_same_pixels_are_searched_once_and_give_the_same_faces(astronaut: np.ndarray) -> None:  # type: ignore[type-arg]
    finder = CountingFinder(face_finder())
    first = faces_in(astronaut, finder)
    copy = astronaut.copy()  # other memory, the same pixels: another manifest's frame of the same source
    assert faces_in(copy, finder) == first and count_faces(copy, finder) == 1
    assert find_face([astronaut, copy], finder) is not None
    assert finder.calls == 1
    # Other pixels, or another finder, are searched.
    darker = (astronaut // 2).astype(np.uint8)
    faces_in(darker, finder)
    assert finder.calls == 2
    other = CountingFinder(face_module.HaarFaceFinder())
    assert faces_in(astronaut, other) and other.calls == 1
    # What the caller does with the list it got changes nothing remembered.
    found = faces_in(astronaut, finder)
    found.clear()
    assert faces_in(astronaut, finder) == first


def test_the_frames_remembered_stay_under_their_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(face_module, "REMEMBERED_FRAMES", 3)
    finder = CountingFinder(face_module.HaarFaceFinder())
    frames = [np.full((48, 64), value, dtype=np.uint8) for value in range(5)]
    for frame in frames:
        assert count_faces(frame, finder) == 0
    assert len(face_module._remembered) == 3
    count_faces(frames[4], finder)
    count_faces(frames[0], finder)  # the oldest went first
    assert finder.calls == 6


class OneAtATime:
    """Stands between a finder and its detector: notes how many searches overlap (each takes 20 ms more)."""

    def __init__(self, detect: Any) -> None:
        self.detect = detect
        self.active = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(0.02)
            return self.detect(*args, **kwargs)
        finally:
            with self.lock:
                self.active -= 1


@pytest.mark.parametrize("finder_class", [face_module.DlibFaceFinder, face_module.HaarFaceFinder])
def test_a_finder_searches_one_frame_at_a_time_whatever_the_threads(
    finder_class: type[FaceFinder],
    astronaut: np.ndarray,  # type: ignore[type-arg]
) -> None:
    # dlib's detector is not safe to share between threads: four manifests analysing their sources at
    # once crashed a batch's process with a segmentation fault.
    finder: Any = finder_class()
    if isinstance(finder, face_module.DlibFaceFinder):
        watch = OneAtATime(finder._detector)
        finder._detector = watch
    else:
        watch = OneAtATime(finder._cascade.detectMultiScale)
        finder._cascade = type("Cascade", (), {"detectMultiScale": staticmethod(watch)})()
    frames = [np.roll(astronaut, shift, axis=1) for shift in range(6)]  # other pixels: nothing remembered
    with ThreadPoolExecutor(max_workers=6) as pool:
        found = list(pool.map(lambda frame: count_faces(frame, finder), frames))
    assert all(count >= 1 for count in found), found
    assert watch.most == 1
