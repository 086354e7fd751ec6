"""The user's shapes on an image and what they measure (Qt-free).

Shapes live in image pixel coordinates (x = column, y = row, origin at the top-left corner of
the first pixel, pixel ``i`` spanning ``[i, i + 1)``), the way pyqtgraph places an ImageItem, so
a shape drawn on a mirrored view measures the same pixels as on the stored image.
Statistics are over modality values (after the Modality LUT): what a researcher compares across
images, not the display values that depend on the window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SHAPE_KINDS = ("rect", "ellipse", "line")


@dataclass
class Shape:
    kind: str  # "rect", "ellipse" (inside the box) or "line" (from (x0, y0) to (x1, y1))
    x0: float
    y0: float
    x1: float
    y1: float
    id: int = 0

    def box(self) -> tuple[float, float, float, float]:
        return min(self.x0, self.x1), min(self.y0, self.y1), max(self.x0, self.x1), max(self.y0, self.y1)


@dataclass(frozen=True)
class RegionStats:
    mean: float
    std: float
    minimum: float
    maximum: float
    pixels: int
    area_mm2: float | None


def region_mask(shape: Shape, rows: int, cols: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """The bounding slices of a rect / ellipse and the pixels (centres) inside it."""
    x0, y0, x1, y1 = shape.box()
    c0, c1 = int(np.clip(math.floor(x0), 0, cols)), int(np.clip(math.ceil(x1), 0, cols))
    r0, r1 = int(np.clip(math.floor(y0), 0, rows)), int(np.clip(math.ceil(y1), 0, rows))
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float64) + 0.5
    if shape.kind == "ellipse":
        a, b = max((x1 - x0) / 2, 1e-9), max((y1 - y0) / 2, 1e-9)
        inside = ((xx - (x0 + x1) / 2) / a) ** 2 + ((yy - (y0 + y1) / 2) / b) ** 2 <= 1.0
    else:
        inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    return (slice(r0, r1), slice(c0, c1)), inside


def region_stats(values: np.ndarray, shape: Shape, spacing: tuple[float, float] | None) -> RegionStats | None:
    """Mean, std, min, max and area (mm², from the pixels counted) of a rect / ellipse; None when
    the shape covers no pixel centre."""
    window, inside = region_mask(shape, *values.shape)
    picked = np.asarray(values[window], dtype=np.float64)[inside]
    if picked.size == 0:
        return None
    area = picked.size * spacing[0] * spacing[1] if spacing else None
    return RegionStats(float(picked.mean()), float(picked.std()), float(picked.min()), float(picked.max()),
                       int(picked.size), area)


def line_length(shape: Shape, spacing: tuple[float, float] | None) -> tuple[float, float | None]:
    """(length in pixels, length in mm or None without pixel spacing)."""
    dx, dy = shape.x1 - shape.x0, shape.y1 - shape.y0
    px = math.hypot(dx, dy)
    mm = math.hypot(dx * spacing[1], dy * spacing[0]) if spacing else None
    return px, mm


def describe(shape: Shape, values: np.ndarray, spacing: tuple[float, float] | None) -> str:
    """One line for the measurement list and the label beside the shape."""
    if shape.kind == "line":
        px, mm = line_length(shape, spacing)
        return f"distance {mm:.1f} mm ({px:.0f} px)" if mm is not None else f"distance {px:.1f} px"
    stats = region_stats(values, shape, spacing)
    if stats is None:
        return f"{shape.kind}: outside the image"
    area = f"{stats.area_mm2:.1f} mm²" if stats.area_mm2 is not None else f"{stats.pixels} px"
    return (f"{'rectangle' if shape.kind == 'rect' else 'ellipse'}: mean {stats.mean:.1f}, std {stats.std:.1f}, "
            f"min {stats.minimum:g}, max {stats.maximum:g}, area {area}")
