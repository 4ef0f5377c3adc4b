"""Structural similarity (Wang et al. 2004, 11x11 Gaussian, sigma 1.5) of gray frames, by region."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
FloatImage = npt.NDArray[np.float64]

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _blur(image: FloatImage) -> FloatImage:
    return np.asarray(cv2.GaussianBlur(image, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT), dtype=np.float64)


def ssim_map(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> FloatImage:
    """Per-pixel SSIM of two gray frames of the same size."""
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    mx, my = _blur(x), _blur(y)
    sxx = _blur(x * x) - mx * mx
    syy = _blur(y * y) - my * my
    sxy = _blur(x * y) - mx * my
    return ((2 * mx * my + _C1) * (2 * sxy + _C2)) / ((mx * mx + my * my + _C1) * (sxx + syy + _C2))


def box_mask(shape: tuple[int, ...], box: Box) -> npt.NDArray[np.bool_]:
    """True inside `box` (clipped to the frame)."""
    mask = np.zeros(shape[:2], dtype=bool)
    x1, y1, x2, y2 = box
    mask[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
    return mask


def ssim_outside(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8], box: Box) -> float:
    """Mean SSIM of the picture outside `box` (the box, blacked out in both, is left out of the mean)."""
    # Grow the box by the filter radius so pixels next to it, whose window reaches into it, do not count.
    x1, y1, x2, y2 = box
    grown = box_mask(a.shape, (x1 - 5, y1 - 5, x2 + 5, y2 + 5))
    values = ssim_map(a, b)[~grown]
    return float(values.mean()) if values.size else 1.0


def ssim_inside(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8], box: Box) -> float:
    """SSIM of the crop `box` of both frames."""
    x1, y1, x2, y2 = box
    crop_a = a[max(0, y1) : y2, max(0, x1) : x2]
    crop_b = b[max(0, y1) : y2, max(0, x1) : x2]
    if crop_a.size == 0:
        return 1.0
    return float(ssim_map(crop_a, crop_b).mean())
