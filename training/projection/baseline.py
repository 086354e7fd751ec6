"""The model-free baseline of projection: reconstruction from a PCA of the normal training images.

Projection asks "how far is this image from the closest image a model of normals can make?"; the
simplest model of normals that needs no training is a linear one. :func:`pca_baseline_maps`
reconstructs each prepared image from the first ``components`` principal components of the
normal images of the train split (same resolution, same preprocessing) and returns
``|x - reconstruction|``, scored like the method (sum inside the breast / breast area). A
projection model that does not beat it has learnt nothing a linear subspace does not hold.
"""
from __future__ import annotations

import numpy as np

COMPONENTS = 16


class NormalPCA:
    """Mean and leading principal components of normal images (n, R, R) in [0, 1]."""

    def __init__(self, normals: np.ndarray, components: int = COMPONENTS):
        x = normals.reshape(len(normals), -1).astype(np.float64)
        self.shape = normals.shape[1:]
        self.mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.basis = vt[: min(components, len(vt))]

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float64) - self.mean
        return ((x @ self.basis.T) @ self.basis + self.mean).reshape((len(images),) + self.shape).astype(np.float32)


def pca_baseline_maps(images: np.ndarray, normals: np.ndarray, components: int = COMPONENTS) -> np.ndarray:
    """``|x - PCA reconstruction|`` of prepared images (n, R, R), the PCA fitted on ``normals`` (m, R, R)."""
    return np.abs(images - NormalPCA(normals, components).reconstruct(images)).astype(np.float32)


def baseline_scores(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The method's image score on the baseline maps: sum inside the breast / breast area."""
    return np.array([m[b].sum() / b.sum() if b.any() else m.mean() for m, b in zip(maps, masks)], dtype=np.float64)
