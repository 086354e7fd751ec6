"""Limits on what a file may make mammolens allocate: checked before any pixel is decoded.

The memory budget is the most one frame's decode and display may take (decoded frame, its
modality values and the display image). It is a setting: ``MAMMOLENS_MEMORY_BUDGET_MB`` in the
environment, else :data:`DEFAULT_BUDGET_MB`.
"""
from __future__ import annotations

import os

BUDGET_ENV = "MAMMOLENS_MEMORY_BUDGET_MB"
#: Enough for a 7000 x 7000 16-bit frame with its display chain; far above any mammogram (3328 x 4084).
DEFAULT_BUDGET_MB = 1024
#: More frames than this in one object is not a tomosynthesis volume (clinical DBT: 30-120 slices).
MAX_FRAMES = 10_000


def memory_budget() -> int:
    """The budget in bytes (the setting, or the default when it is unset or not a positive number)."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_BUDGET_MB
    except ValueError:
        value = DEFAULT_BUDGET_MB
    if not value > 0 or value != value:
        value = DEFAULT_BUDGET_MB
    return int(value * (1 << 20))


def frame_cost(rows: int, cols: int, samples: int = 1, bytes_per_sample: int = 2) -> int:
    """Bytes one frame needs from decode to display: the stored frame, a float32 luminance for colour,
    the int32 LUT index and the float32 display image."""
    pixels = rows * cols
    return pixels * (samples * bytes_per_sample + (4 * samples if samples > 1 else 0) + 8)
