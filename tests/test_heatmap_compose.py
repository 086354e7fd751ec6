"""The exported overlay blends only the pixels whose colour-table entry is not transparent: the
same bytes as blending every pixel."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("opacity, threshold", [(0.5, 0.05), (1.0, 0.0), (0.0, 0.1), (0.7, 0.15)])
def test_compose_equals_the_full_blend(opacity, threshold):
    from app.heatmap import calibrated_style, compose, style_table, table_index

    rng = np.random.default_rng(7)
    display = rng.random((300, 200), dtype=np.float32) * 1.2 - 0.1
    value_map = np.where(rng.random((300, 200)) < 0.4, rng.random((300, 200), dtype=np.float32) * 0.2, 0)
    value_map = value_map.astype(np.float32)
    value_map[3, 4] = np.nan
    style = calibrated_style(value_map, "difference")
    style.threshold, style.opacity = threshold, opacity
    table = style_table(style)
    grey = np.clip(display, 0.0, 1.0)[..., None].repeat(3, axis=2)
    rgba = table[table_index(value_map, style.vmax, len(table))]
    alpha = (rgba[..., 3:4].astype(np.float32) / 255.0) * np.float32(opacity)
    expected = ((grey * (1 - alpha) + (rgba[..., :3].astype(np.float32) / 255.0) * alpha) * 255 + 0.5).astype(np.uint8)
    got = compose(display, value_map, table, style.vmax, opacity)
    np.testing.assert_array_equal(got, expected)
    assert (got != (grey * 255 + 0.5).astype(np.uint8)).any() == (opacity > 0)
