"""Qt-free overlay rendering for exports: a map over the windowed image as an RGB PNG.

The default colour map is viridis (perceptually uniform, readable with colour-vision
deficiencies), rebuilt from its published anchor colours so no plotting library is needed.
Below the threshold the map is transparent.
"""
from __future__ import annotations

import numpy as np

# viridis at 0, 0.1, ..., 1.0 (matplotlib's _viridis_data sampled every 25.5 entries)
_VIRIDIS = np.array([
    [0.267004, 0.004874, 0.329415], [0.282623, 0.140926, 0.457517], [0.253935, 0.265254, 0.529983],
    [0.206756, 0.371758, 0.553117], [0.163625, 0.471133, 0.558148], [0.127568, 0.566949, 0.550556],
    [0.134692, 0.658636, 0.517649], [0.266941, 0.748751, 0.440573], [0.477504, 0.821444, 0.318195],
    [0.741388, 0.873449, 0.149561], [0.993248, 0.906157, 0.143936],
])


def viridis(n: int = 256) -> np.ndarray:
    """(n, 3) float table in [0, 1]."""
    x = np.linspace(0, 1, len(_VIRIDIS))
    t = np.linspace(0, 1, n)
    return np.stack([np.interp(t, x, _VIRIDIS[:, c]) for c in range(3)], axis=1)


def render_overlay(display: np.ndarray, value_map: np.ndarray, *, threshold: float = 0.0, vmax: float | None = None,
                   opacity: float = 0.6) -> np.ndarray:
    """uint8 RGB: the grey image with the map coloured where it reaches ``threshold``."""
    grey = np.clip(display, 0, 1)[..., None].repeat(3, axis=2)
    vmax = float(vmax if vmax is not None else max(np.percentile(value_map, 99.5), threshold + 1e-6))
    span = max(vmax - threshold, 1e-9)
    level = np.clip((value_map - threshold) / span, 0, 1)
    colours = viridis()[np.rint(level * 255).astype(int)]
    alpha = np.where(value_map >= threshold, opacity, 0.0)[..., None] if threshold > 0 else opacity * level[..., None]
    rgb = grey * (1 - alpha) + colours * alpha
    return (rgb * 255 + 0.5).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG file content of a uint8 grey (H, W) or RGB (H, W, 3) array."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.ascontiguousarray(pixels), extension=".png")
