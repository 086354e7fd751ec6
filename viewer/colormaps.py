"""Colour tables for the overlays, from pyqtgraph's bundled colour maps (viridis, cividis, ...)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg


def colour_table(name: str, size: int = 256) -> np.ndarray:
    """(size, 3) uint8 RGB table of a pyqtgraph colour map."""
    return np.asarray(pg.colormap.get(name).getLookupTable(nPts=size, alpha=False), dtype=np.uint8)
