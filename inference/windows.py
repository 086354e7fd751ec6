"""Sliding windows over the breast (paper 002), shared by training (where windows are drawn) and
the inpainting engine (where the heatmap's windows run): numpy only."""
from __future__ import annotations

import numpy as np


def window_origins(breast: np.ndarray, fov: int, stride: int, min_breast: float = 0.5) -> np.ndarray:
    """Top-left corners ``(row, col)`` of the ``fov`` windows, every ``stride`` pixels, whose
    breast share is at least ``min_breast`` (paper 002 slides over breast tissue only)."""
    rows, cols = breast.shape
    if rows < fov or cols < fov:
        return np.zeros((0, 2), dtype=np.intp)
    integral = np.pad(np.cumsum(np.cumsum(breast.astype(np.int64), 0), 1), ((1, 0), (1, 0)))
    r = np.arange(0, rows - fov + 1, stride)
    c = np.arange(0, cols - fov + 1, stride)
    rr, cc = np.meshgrid(r, c, indexing="ij")
    area = integral[rr + fov, cc + fov] - integral[rr, cc + fov] - integral[rr + fov, cc] + integral[rr, cc]
    keep = area >= min_breast * fov * fov
    return np.stack([rr[keep], cc[keep]], axis=1)
