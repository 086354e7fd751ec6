"""The preprocessing contract (paper 000), shared by training, inference and the viewer.

Park et al. flip right breasts to face left, map the DICOM VOI window to 8 bits, pad the image to
a square "by padding zeros on the right edge" (the side away from the chest wall) and resize to
512 x 512. mammolens does the same on the displayed frame (window already applied, values in
[0, 1], so the 8-bit quantisation is not repeated) and keeps the geometry to undo it:
:func:`to_original` puts any model-space map back on the original pixels exactly.

Downsampling averages ``factor x factor`` blocks (area interpolation, exact and fast on a 4k
image), then a bilinear resize covers the remaining non-integer ratio. Both steps use the
pixel-centre convention ``x_in = (x_out + 0.5) * scale - 0.5``, so the inverse resize maps every
model pixel back to the centre of the original area it summarises.
"""
from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """How an original frame became a model input, and therefore how to go back."""

    rows: int  # original frame
    cols: int
    flipped: bool  # right breast mirrored to face left (chest wall at column 0)
    side: int  # square side after padding (>= max(rows, cols), a multiple of ``factor``)
    factor: int  # block-average factor applied before the final resize
    resolution: int  # model input size

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CoarseMask:
    """A mask computed on every ``step``-th pixel of a (rows, cols) frame; :meth:`full` repeats each
    value over its ``step x step`` block (the frame's own grid), :meth:`model_space` places it in
    model space without building the full-size mask."""

    values: np.ndarray  # bool (ceil(rows / step), ceil(cols / step))
    step: int
    shape: tuple[int, int]  # (rows, cols) of the frame

    def full(self) -> np.ndarray:
        if self.step == 1:
            return self.values
        full = np.repeat(np.repeat(self.values, self.step, axis=0), self.step, axis=1)
        return full[: self.shape[0], : self.shape[1]]

    def model_space(self, geometry: Geometry) -> np.ndarray:
        """``to_model_space(self.full(), geometry)``, the same float32 values, from the coarse mask.

        Each block mean of the full mask is a count of ones over the block's area: the coarse rows
        and columns each frame row and column comes from, summed block by block (integers, so
        exact in any order)."""
        g = geometry
        nb = g.side // g.factor
        starts = np.arange(nb) * g.factor
        rows = np.arange(g.rows) // self.step
        cols = (np.arange(g.cols)[::-1] if g.flipped else np.arange(g.cols)) // self.step
        counts = np.zeros((nb, nb), dtype=np.int32)
        r_blocks, c_blocks = -(-g.rows // g.factor), -(-g.cols // g.factor)
        per_row = np.add.reduceat(self.values.astype(np.int32)[rows], starts[:r_blocks], axis=0)
        counts[:r_blocks, :c_blocks] = np.add.reduceat(per_row[:, cols], starts[:c_blocks], axis=1)
        blocks = counts.astype(np.float32) / np.float32(g.factor * g.factor)
        return _resize(blocks, g.resolution, 1).astype(np.float32)


@dataclass
class ModelInput:
    image: np.ndarray  # float32 (resolution, resolution), values in [0, 1]
    mask: np.ndarray  # bool (resolution, resolution): breast in model space
    geometry: Geometry
    coarse_breast: CoarseMask  # the breast, as computed (on a copy of at most ~512 px a side)

    @cached_property
    def breast(self) -> np.ndarray:
        """bool (rows, cols): the breast in the original grid (built when first asked for)."""
        return self.coarse_breast.full()


def breast_mask(display: np.ndarray) -> np.ndarray:
    """The breast: the largest bright connected region, holes filled.

    Background air, film labels and markers (bright but detached) fall outside. Computed on a
    copy of at most ~512 px a side, then brought back to the frame's size.
    """
    return coarse_breast_mask(display).full()


def coarse_breast_mask(display: np.ndarray, *, clip: bool = False) -> CoarseMask:
    """:func:`breast_mask` before it is brought back to the frame's size (``clip``: clip the
    sampled values to [0, 1] first, as :func:`preprocess` sees the frame)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    shape = np.shape(display)
    step = max(1, int(np.ceil(max(shape) / 512)))
    small = np.asarray(np.asarray(display)[::step, ::step], dtype=np.float32)
    if clip:
        small = np.clip(small, 0.0, 1.0)
    coarse = CoarseMask(np.zeros(small.shape, dtype=bool), step, shape)
    if float(small.max()) <= float(small.min()):
        return coarse
    # Otsu splits air from tissue; half of it keeps the faint skin-line fall-off inside
    fg = small > 0.5 * threshold_otsu(small)
    # opening drops specks and thin film artefacts; the edge-replicated margin keeps it from
    # eating the breast where it touches the image border (the chest wall)
    fg = ndimage.binary_opening(np.pad(fg, 3, mode="edge"), iterations=2)[3:-3, 3:-3]
    labels, n = ndimage.label(fg)
    if n == 0:
        return coarse
    largest = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    # holes filled (binary_fill_holes): the background parts, 4-connected as it counts them, that
    # do not reach the border
    background, _ = ndimage.label(~largest)
    edge = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    return CoarseMask(~np.isin(background, edge[edge > 0]), step, shape)


def _geometry(rows: int, cols: int, flipped: bool, resolution: int) -> Geometry:
    side = max(rows, cols)
    factor = max(1, side // resolution)
    side = int(np.ceil(side / factor) * factor)
    return Geometry(rows, cols, flipped, side, factor, resolution)


def linear_axis(n_in: int, n_out: int, scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a linear resize along one axis, pixel-centre aligned:
    ``x_in = (x_out + 0.5) * scale - 0.5`` with ``scale = n_in / n_out`` unless given, clamped at
    the edges (skimage's mode="edge")."""
    scale = n_in / n_out if scale is None else scale
    x = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (x - lo).astype(np.float32)


def resize_linear(arr: np.ndarray, shape: tuple[int, int], scale: float | None = None,
                  keep: tuple[int, int] | None = None) -> np.ndarray:
    """Separable linear resize to ``shape`` in float32 (the same values as skimage's
    ``resize(order=1, mode="edge", anti_aliasing=False)`` to 1e-6, several times faster), of
    which only the top-left ``keep`` rows and columns are computed; ``scale``: input pixels per
    output pixel when it is not ``n_in / n_out`` (upsampling a field by an integer factor)."""
    rows, cols = keep or shape
    out = np.asarray(arr, dtype=np.float32)
    for axis, (n_out, n_keep) in enumerate(zip(shape, (rows, cols))):
        lo, hi, w = (v[:n_keep] for v in linear_axis(out.shape[axis], n_out, scale))
        a, b = np.take(out, lo, axis=axis), np.take(out, hi, axis=axis)
        b -= a
        b *= w[:, None] if axis == 0 else w
        a += b
        out = a
    return out


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k blocks (edges padded by replication when the size is no multiple of k), float32."""
    if k == 1:
        return np.array(a, dtype=np.float32)
    rows, cols = a.shape
    pr, pc = (-rows) % k, (-cols) % k
    if pr or pc:
        a = np.pad(a, ((0, pr), (0, pc)), mode="edge")
    r, c = a.shape
    return a.reshape(r // k, k, c // k, k).mean(axis=(1, 3), dtype=np.float32)


def _resize(arr: np.ndarray, size: int, order: int, keep: tuple[int, int] | None = None) -> np.ndarray:
    """Square resize to ``size``, returning only the top-left ``keep`` = (rows, cols) of it.

    Linear (order 1) is separable and done here in float32 on the kept part only: mapping a map
    back onto a 2457 x 1890 DBT slice costs tens of ms instead of hundreds through skimage (same
    values to 1e-7).
    """
    rows, cols = keep or (size, size)
    if arr.shape == (size, size):
        return arr[:rows, :cols]
    if order != 1:
        from skimage.transform import resize

        out = resize(arr, (size, size), order=order, mode="edge", anti_aliasing=False, preserve_range=True)
        return out[:rows, :cols]
    return resize_linear(arr, (size, size), keep=(rows, cols))


def to_model_space(arr: np.ndarray, geometry: Geometry, *, order: int = 1) -> np.ndarray:
    """Flip, pad (zeros right / bottom), block-average and resize an original-grid array."""
    g = geometry
    a = np.asarray(arr, dtype=np.float32)
    if a.shape != (g.rows, g.cols):
        raise ValueError(f"array is {a.shape}, the geometry expects {(g.rows, g.cols)}")
    if g.flipped:
        a = a[:, ::-1]
    square = np.zeros((g.side, g.side), dtype=np.float32)
    square[: g.rows, : g.cols] = a
    if g.factor > 1:
        square = block_mean(square, g.factor)
    return _resize(square, g.resolution, order).astype(np.float32)


def to_original(model_map: np.ndarray, geometry: Geometry, *, order: int = 1) -> np.ndarray:
    """The exact inverse placement of :func:`to_model_space`: a model-space map on the original grid."""
    g = geometry
    m = np.asarray(model_map, dtype=np.float32)
    if m.shape != (g.resolution, g.resolution):
        raise ValueError(f"map is {m.shape}, the model works at {g.resolution} x {g.resolution}")
    out = _resize(m, g.side, order, keep=(g.rows, g.cols)).astype(np.float32, copy=False)
    return np.ascontiguousarray(out[:, ::-1] if g.flipped else out)


def preprocess(display: np.ndarray, laterality: str, resolution: int) -> ModelInput:
    """Model input from a displayed frame (values in [0, 1], MONOCHROME2 orientation).

    ``laterality`` "R" flips the frame so every breast faces left; anything else is taken as a
    left breast (chest wall at column 0), as the hanging convention stores it.
    """
    display = np.asarray(display, dtype=np.float32)
    if display.ndim != 2:
        raise ValueError(f"expected one 2D frame, got shape {display.shape}")
    g = geometry = _geometry(display.shape[0], display.shape[1], laterality == "R", resolution)
    breast = coarse_breast_mask(display, clip=True)
    # to_model_space of the clipped frame, the same values: the frame is clipped straight into the
    # blocks that hold it, and the blocks wholly in the zero padding are zeros (each block's mean
    # sums the same values in the same order as on the whole square)
    f, nb = g.factor, g.side // g.factor
    rb, cb = -(-g.rows // f), -(-g.cols // f)
    part = np.zeros((rb * f, cb * f), dtype=np.float32)
    np.clip(display[:, ::-1] if g.flipped else display, 0.0, 1.0, out=part[: g.rows, : g.cols])
    square = np.zeros((nb, nb), dtype=np.float32)
    square[:rb, :cb] = block_mean(part, f)
    image = _resize(square, g.resolution, 1).astype(np.float32)
    mask = breast.model_space(geometry) > 0.5
    return ModelInput(image=np.clip(image, 0.0, 1.0), mask=mask, geometry=geometry, coarse_breast=breast)


class _HeldMaps:
    """The original-grid maps made so far, for all :class:`ModelSpaceMaps` together, least recently
    read dropped first beyond ``limit`` bytes (made again if read again): hovering over every slice
    of a volume does not keep every slice's full-size maps."""

    def __init__(self, limit: int = 512 << 20):
        self.limit, self.nbytes = limit, 0
        self._items: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._tokens = itertools.count()

    def token(self) -> int:
        return next(self._tokens)

    def get(self, key):
        with self._lock:
            out = self._items.get(key)
            if out is not None:
                self._items.move_to_end(key)
            return out

    def put(self, key, value: np.ndarray) -> None:
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self.nbytes += int(value.nbytes)
            while self.nbytes > self.limit and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self.nbytes -= int(dropped.nbytes)


HELD_MAPS = _HeldMaps()


class ModelSpaceMaps(Mapping):
    """A result's maps kept in model space and put on the original grid (:func:`to_original`) the
    first time each is read: a DBT volume's slices cost their full-size maps only when shown (the
    ones made are kept in :data:`HELD_MAPS`, bounded).

    ``masked``: the maps multiplied by the breast on the original grid (the difference map);
    ``dtype``: what the original-grid maps are stored as (float16 in the viewer's cache)."""

    def __init__(self, model: dict[str, np.ndarray], geometry: Geometry, breast: CoarseMask | None = None,
                 masked: tuple[str, ...] = (), dtype=np.float32):
        self.model, self.geometry, self.breast = dict(model), geometry, breast
        self.masked, self.dtype = tuple(masked), np.dtype(dtype)
        self._token = HELD_MAPS.token()

    def __getitem__(self, name: str) -> np.ndarray:
        out = HELD_MAPS.get((self._token, name))
        if out is None:
            out = to_original(self.model[name], self.geometry)
            if name in self.masked and self.breast is not None:
                out *= self.breast.full()
            out = out.astype(self.dtype, copy=False)
            HELD_MAPS.put((self._token, name), out)
        return out

    def __contains__(self, name) -> bool:  # without making the map (Mapping's would read it)
        return name in self.model

    def __iter__(self):
        return iter(self.model)

    def __len__(self) -> int:
        return len(self.model)

    def shape_of(self, name: str) -> tuple[int, int]:
        """The shape of a map on the original grid (without making it)."""
        if name not in self.model:
            raise KeyError(name)
        return self.geometry.rows, self.geometry.cols

    @property
    def nbytes(self) -> int:
        """What it holds itself: the model-space maps and the coarse breast mask."""
        return sum(int(m.nbytes) for m in self.model.values()) + \
            (int(self.breast.values.nbytes) if self.breast is not None else 0)

    def subset(self, keep, dtype=None) -> "ModelSpaceMaps":
        """Only the maps named in ``keep``, stored as ``dtype`` once on the original grid."""
        keep = set(keep)
        return ModelSpaceMaps({k: v for k, v in self.model.items() if k in keep}, self.geometry, self.breast,
                              self.masked, self.dtype if dtype is None else dtype)


def box_to_model_space(box, geometry: Geometry) -> tuple[float, float, float, float]:
    """An original-grid box ``(x0, y0, x1, y1)`` (x1 / y1 exclusive) in model-space pixels."""
    g = geometry
    x0, y0, x1, y1 = (float(v) for v in box)
    if g.flipped:
        x0, x1 = g.cols - x1, g.cols - x0
    scale = g.resolution / g.side
    return (x0 * scale, y0 * scale, x1 * scale, y1 * scale)
