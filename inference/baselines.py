"""Model-free baseline maps: what plain image processing finds on the same images and boxes.

A GAN's anomaly map only means something beside what a map without any learning does with the
same pixels (heavy-tailed maps, and lesions sitting in dense tissue, let any map "beat" a weak
null). Each method names its baseline in its card sections (``training/<method>/card.py``),
computed on prepared (model-space) images and breast masks and returned as maps of the same shape,
so the card's ratios, scores and nulls apply to both unchanged:

* translation (HealthyGAN): the local-contrast residual, ``|g_s(x) - g_L(x)|`` inside the breast,
  where ``g_L`` smooths the image at the lesion scale ``L`` (a Gaussian of sigma ``L`` pixels,
  normalised over the breast so the skin line leaves no rim) and ``g_s`` only takes the pixel
  noise off (sigma ``noise_sigma``): the image minus its smoothed self;
* inpainting: the biharmonic completion's error in the method's own windows: in every window the
  engine scores (same field of view, hole, stride and breast share), the centre hole is filled by
  scikit-image's biharmonic inpainting from the rest of the window and its mean squared error in
  the hole is the window's value, drawn on the model grid by the engine's own heatmap rule.

numpy / scipy / scikit-image only.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _stack(images, masks) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(images, dtype=np.float64)
    m = np.asarray(masks, dtype=bool)
    if x.ndim == 2:
        x, m = x[None], m[None]
    if x.ndim != 3 or m.shape != x.shape:
        raise ValueError(f"images and breast masks must be arrays (N, H, W) of one shape, got {x.shape} and {m.shape}.")
    return x, m


def local_contrast_residual(image: np.ndarray, breast: np.ndarray, scale: float,
                            noise_sigma: float = 1.0) -> np.ndarray:
    """``|g_s(x) - g_L(x)|`` on the breast (0 outside), float32; ``scale`` = L in pixels (lesion scale)."""
    from scipy.ndimage import gaussian_filter

    if not (float(scale) > 0):
        raise ValueError(f"the lesion scale must be a positive number of pixels, not {scale!r}.")
    x = np.asarray(image, dtype=np.float64)
    m = np.asarray(breast, dtype=bool)
    w = m.astype(np.float64)

    def smooth(sigma):  # normalised convolution: only breast pixels contribute
        if sigma <= 0:
            return x
        num = gaussian_filter(x * w, sigma, mode="constant")
        den = gaussian_filter(w, sigma, mode="constant")
        return np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)

    out = np.abs(smooth(float(noise_sigma)) - smooth(float(scale)))
    return np.where(m, out, 0.0).astype(np.float32)


def local_contrast_maps(images, masks, scale: float, noise_sigma: float = 1.0) -> np.ndarray:
    """:func:`local_contrast_residual` of every prepared image (N, H, W)."""
    x, m = _stack(images, masks)
    return np.stack([local_contrast_residual(a, b, scale, noise_sigma) for a, b in zip(x, m)])


def biharmonic_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``image`` with the ``hole`` pixels replaced by scikit-image's biharmonic inpainting from the rest."""
    from skimage.restoration import inpaint_biharmonic

    return inpaint_biharmonic(np.asarray(image, dtype=np.float64), np.asarray(hole, dtype=bool))


def biharmonic_box(display: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box (x0, y0, x1, y1) of ``display`` filled by biharmonic inpainting from a margin of half its
    size around it, clipped to [0, 1] (float32): the classical completion an inpainting model faces."""
    x0, y0, x1, y1 = box
    m = (x1 - x0) // 2
    r0, r1 = max(0, y0 - m), min(display.shape[0], y1 + m)
    c0, c1 = max(0, x0 - m), min(display.shape[1], x1 + m)
    crop = display[r0:r1, c0:c1].astype(np.float64)
    mask = np.zeros(crop.shape, bool)
    mask[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = True
    filled = biharmonic_fill(crop, mask)
    return np.clip(filled[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0], 0, 1).astype(np.float32)


def biharmonic_error_map(image: np.ndarray, breast: np.ndarray, *, fov: int, hole: int, stride: int,
                         min_breast: float = 0.5, kind: str = "non-averaged") -> np.ndarray:
    """The biharmonic completion's MSE in the centre hole of every breast window, as a heatmap.

    The windows are the inpainting engine's (:func:`inference.windows.window_origins` with the same
    ``fov``, ``stride`` and ``min_breast``) and the map is drawn by its own
    :func:`inference.methods.inpainting.heatmap` (NaN where no window reaches).
    """
    from inference.methods.inpainting import WindowErrors, heatmap
    from inference.windows import window_origins

    x = np.asarray(image, dtype=np.float64)
    origins = window_origins(np.asarray(breast, bool), int(fov), int(stride), float(min_breast))
    s = (int(fov) - int(hole)) // 2
    hole_mask = np.zeros((fov, fov), bool)
    hole_mask[s : s + hole, s : s + hole] = True
    mse = np.zeros(len(origins))
    for i, (r, c) in enumerate(origins):
        window = x[r : r + fov, c : c + fov]
        filled = np.clip(biharmonic_fill(window, hole_mask), 0.0, 1.0)
        mse[i] = float(np.mean((filled[hole_mask] - window[hole_mask]) ** 2))
    errors = WindowErrors(origins, mse, np.ones_like(mse))
    return heatmap(errors, x.shape, int(fov), int(stride), "mse", kind)


def biharmonic_error_maps(images, masks, *, fov: int, hole: int, stride: int, min_breast: float = 0.5,
                          kind: str = "non-averaged") -> np.ndarray:
    """:func:`biharmonic_error_map` of every prepared image (N, H, W)."""
    x, m = _stack(images, masks)
    return np.stack([biharmonic_error_map(a, b, fov=fov, hole=hole, stride=stride, min_breast=min_breast, kind=kind)
                     for a, b in zip(x, m)])
