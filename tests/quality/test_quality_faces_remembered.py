"""Faces found once per process for the same pixels (`faces_in`): the preflight of every manifest of a
batch looks at the same frames of their shared source."""

from __future__ import annotations

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
