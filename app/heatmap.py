"""How a method's map is coloured over the image, on screen and in exports (Qt-free).

The map is drawn through one RGBA lookup table over the levels ``(0, vmax)``: table entries
for values below the threshold have alpha 0, so moving the threshold swaps the table and
re-colours the map the viewer already holds; nothing is recomputed. Exports compose the
windowed image with the same table and opacity, so a PNG shows what the screen shows.

The colour tables are 256-entry RGB tables shipped in ``resources/colormaps.npz`` (the CC0
matplotlib maps as pyqtgraph bundles them, sampled once; a test pins them to pyqtgraph's own
tables), so the screen and the headless exports (``mammolens analyze``, view exports) colour a
map with the same table and this module stays free of Qt.
"""
from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass

import numpy as np

LUT_SIZE = 256  # threshold resolution vmax / 256; <= 256 entries lets Qt draw the map as an indexed image

#: Perceptually uniform colour maps that stay readable with colour-vision deficiencies.
COLORMAPS = ("viridis", "cividis", "magma", "inferno", "plasma")



#: what a per-window error map is called, by the value of its method's "score" parameter
ERROR_NAMES = {"dmse": "DMSE", "mse": "MSE", "critic": "critic loss"}


def map_label(spec, values: dict, map_name: str) -> tuple[str, str]:
    """(short name, units) of a method's map as the viewer shows and exports it. A method whose
    main map holds its per-window score (inpainting: DMSE, MSE or the critic loss, the "score"
    parameter) is named after that score, not the key its results store it under ("difference")."""
    units = spec.units.get(map_name, "")
    score = next((p for p in spec.parameters if p.name == "score"), None)
    if score is not None and spec.maps and map_name == spec.maps[0]:
        chosen = str(values.get("score", score.default))
        name = ERROR_NAMES.get(chosen, chosen)
        return name, f"{name} per window (the image score's unit)"
    return map_name, units


@functools.lru_cache(maxsize=None)
def colour_table(name: str) -> np.ndarray:
    """(256, 3) uint8 RGB table of one of :data:`COLORMAPS` (read-only)."""
    if name not in COLORMAPS:
        raise ValueError(f"colour map {name!r} is not one of {', '.join(COLORMAPS)}")
    with importlib.resources.files("resources").joinpath("colormaps.npz").open("rb") as stream:
        table = np.load(stream)[name]
    table.setflags(write=False)
    return table


def style_table(style: "OverlayStyle") -> np.ndarray:
    """The RGBA table a style draws its map with, on screen and in exports alike."""
    return rgba_table(colour_table(style.colormap), style.vmax, style.threshold)


@dataclass
class OverlayStyle:
    """How one bundle's maps are shown; shared by every view showing that bundle (same units)."""

    colormap: str = COLORMAPS[0]
    opacity: float = 0.6
    threshold: float = 0.0  # in the map's units; below it the map is transparent
    vmax: float = 1.0  # top of the colour scale, in the map's units
    contour: bool = False
    map_name: str = "difference"
    calibrated: bool = False  # threshold and vmax were set from a first map


@dataclass(frozen=True)
class MapSummary:
    """Robust range of a map, computed on the worker thread with the result (percentiles of a
    full-size map cost tens of ms, too much for the UI thread)."""

    vmax: float  # 99.9th percentile of the non-zero values
    default_threshold: float  # 95th percentile of the non-zero values: the hottest 5 % coloured


def calibrated_style(value_map: np.ndarray, map_name: str, **taste) -> OverlayStyle:
    """The style a first map sets for its kind in the viewer (hottest 5 % coloured up to the
    99.9th percentile); what headless exports use."""
    summary = summarise(value_map)
    return OverlayStyle(map_name=map_name, vmax=summary.vmax, threshold=summary.default_threshold, calibrated=True,
                        **taste)


def summarise(value_map: np.ndarray) -> MapSummary:
    step = max(1, int(np.ceil(np.sqrt(value_map.size / 250_000))))
    sample = np.asarray(value_map[::step, ::step], dtype=np.float32)
    positive = sample[sample > 0]
    if positive.size == 0:
        return MapSummary(vmax=1.0, default_threshold=0.0)
    hi, thr = np.percentile(positive, [99.9, 95.0])
    vmax = float(hi) if hi > 0 else float(positive.max())
    return MapSummary(vmax=max(vmax, 1e-6), default_threshold=float(min(thr, vmax)))


def rgba_table(colours: np.ndarray, vmax: float, threshold: float, size: int = LUT_SIZE) -> np.ndarray:
    """(size, 4) uint8 table over the levels (0, vmax); entry i covers values
    [i, i + 1) * vmax / size, and is transparent when that bin lies below ``threshold``."""
    colours = np.asarray(colours, dtype=np.float64)
    x = np.linspace(0.0, 1.0, len(colours))
    t = np.linspace(0.0, 1.0, size)
    rgb = np.stack([np.interp(t, x, colours[:, c]) for c in range(3)], axis=1)
    bin_top = (np.arange(size) + 1) * (float(vmax) / size)
    alpha = np.where(bin_top > threshold, 255, 0)
    return np.concatenate([np.rint(rgb), alpha[:, None]], axis=1).astype(np.uint8)


def table_index(value_map: np.ndarray, vmax: float, size: int = LUT_SIZE) -> np.ndarray:
    """Which table entry each map value takes: floor(value / vmax * size), clipped -- the rule
    pyqtgraph applies with the levels (0, vmax). uint8 for tables of at most 256 entries, which
    Qt then draws as an indexed image with the table as its colours, without per-pixel work."""
    scaled = np.asarray(value_map, dtype=np.float32) * np.float32(size / max(float(vmax), 1e-12))
    np.nan_to_num(scaled, copy=False, nan=0.0)  # no-data (NaN, e.g. a border windows cannot reach): entry 0
    np.clip(scaled, 0, size - 1, out=scaled)
    return scaled.astype(np.uint8 if size <= 256 else np.uint16)


CONTOUR_RGB = (255, 255, 255)  # the viewer's contour pen
BOX_RGB = (255, 96, 64)  # the viewer's ground-truth box pen


def draw_boxes(rgb: np.ndarray, boxes, width: int = 2) -> np.ndarray:
    """Outline ground-truth boxes ((x0, y0, x1, y1) in pixels) on a uint8 RGB image, in place."""
    rows, cols = rgb.shape[:2]
    for x0, y0, x1, y1 in boxes:
        c0, c1 = (int(np.clip(round(v), 0, cols - 1)) for v in (x0, x1))
        r0, r1 = (int(np.clip(round(v), 0, rows - 1)) for v in (y0, y1))
        for r in (r0, max(r0, r1 - width + 1)):
            rgb[r:r + width, c0:c1 + 1] = BOX_RGB
        for c in (c0, max(c0, c1 - width + 1)):
            rgb[r0:r1 + 1, c:c + width] = BOX_RGB
    return rgb


def compose(display: np.ndarray, value_map: np.ndarray | None, table: np.ndarray | None, vmax: float,
            opacity: float, contour_level: float | None = None) -> np.ndarray:
    """uint8 RGB of the windowed frame ([0, 1]) with the map coloured through ``table`` and, with
    ``contour_level``, the one-pixel outline of where the map reaches it (as the viewer draws it)."""
    grey = np.clip(np.asarray(display, dtype=np.float32), 0.0, 1.0)
    out = np.repeat((grey * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    if value_map is None or table is None:
        return out
    # blended where the table's entry is not transparent; elsewhere grey * (1 - 0) + colour * 0 is
    # the grey itself, so only the coloured pixels are computed (the same bytes, a fraction of the work)
    table = np.asarray(table)
    alpha_of = (table[:, 3].astype(np.float32) / 255.0) * np.float32(opacity)
    index = table_index(value_map, vmax, len(table))
    shown = (alpha_of > 0)[index]
    index = index[shown]
    alpha = alpha_of[index][:, None]
    rgb = grey[shown][:, None] * (1 - alpha) + (table[index, :3].astype(np.float32) / 255.0) * alpha
    out[shown] = (rgb * 255 + 0.5).astype(np.uint8)
    if contour_level is not None:
        from scipy import ndimage

        above = np.asarray(value_map) >= contour_level
        out[above & ~ndimage.binary_erosion(above)] = CONTOUR_RGB
    return out


def contour_lines(value_map: np.ndarray, level: float, max_side: int = 384) -> np.ndarray | None:
    """The iso-line at ``level`` as one (N, 2) array of x, y pixel coordinates (pixel centres at
    +0.5), pieces separated by NaN rows; None when the level is not crossed.

    Traced on a copy of at most ``max_side`` pixels a side: a few ms, so the contour can follow
    the threshold slider on the UI thread.
    """
    from skimage.measure import find_contours

    step = max(1, int(np.ceil(max(value_map.shape) / max_side)))
    small = np.nan_to_num(np.asarray(value_map[::step, ::step], dtype=np.float32), nan=0.0)  # no-data: below
    if not (small.min() < level < small.max()):
        return None
    pieces = []
    for line in find_contours(small, level):
        xy = np.empty((len(line) + 1, 2), dtype=np.float32)
        xy[:-1, 0] = line[:, 1] * step + 0.5
        xy[:-1, 1] = line[:, 0] * step + 0.5
        xy[-1] = np.nan
        pieces.append(xy)
    return np.concatenate(pieces) if pieces else None


def overlay_png(display: np.ndarray, value_map: np.ndarray | None, style: OverlayStyle | None, boxes=()) -> bytes:
    """PNG of a frame as the screen shows it: the windowed image, the map through the style's
    table, its contour when the style draws one, the ground-truth boxes. The one export path of
    the viewer's "Export view" and of ``mammolens analyze``."""
    from inference.images import png_bytes

    if value_map is None or style is None:
        rgb = compose(display, None, None, 1.0, 0.0)
    else:
        rgb = compose(display, value_map, style_table(style), style.vmax, style.opacity,
                      style.threshold if style.contour else None)
    return png_bytes(draw_boxes(rgb, boxes))


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file (float32 maps: exports keep the values, not colours)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()
