"""Image files written by every layer (overlays, sample grids, patches): one PNG encoder."""
from __future__ import annotations

import numpy as np


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG file content of a uint8 / uint16 grey (H, W) or RGB (H, W, 3) array."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.ascontiguousarray(pixels), extension=".png")
