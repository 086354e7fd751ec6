"""Foreign objects on finished phantom images: metal biopsy clips and skin markers.

Real screening mammograms carry metal: a biopsy clip left at a biopsy site, a BB on a nipple,
mole or palpable lump, a wire along a scar. Metal attenuates almost completely, so in a
"for presentation" image it is the brightest thing, small and sharp. Evaluation uses such
objects as a plumbing check (an anomaly map must light up on an object the model never saw);
they are labelled ``foreign_object`` in the labels file and never count as lesions.

Objects are drawn on top of a finished image, from their own random stream, and only the pixels
they cover change: the image without the object (its "twin") is the same seed drawn without
foreign objects, equal pixel for pixel outside the object's mask.

Kinds (the labels file's ``detail``):

* ``biopsy_clip``: a bent wire, 2-5 mm long, 0.3-0.6 mm thick (shapes ``ribbon`` - a zigzag
  band, ``coil`` - a helix seen obliquely, ``hairpin`` - a U-bent wire), in the tissue at least
  5 mm from the skin (less only where a small breast leaves no room) and off the pectoral muscle;
* ``skin_marker_bb``: a solid metal ball (a disc of 1.5-4 mm in projection) just inside the skin
  line;
* ``skin_marker_line``: a linear scar marker, a wire 10-30 mm long and ~0.5 mm thick, a chord
  1.5-5 mm inside the skin line.

Coordinates follow the rest of the simulator: pixel ``i`` spans ``[i, i + 1)``; boxes are
``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive, the bounding box of the object's mask (every
pixel the object touches).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from inference.labels import FOREIGN_OBJECT as FOREIGN_OBJECT_LABEL
from inference.labels import FOREIGN_OBJECT_KINDS

from .anatomy import GAMMA
from .mammogram import FOREIGN_OBJECT_STREAM, PhantomImage, child, seed_sequence

CLIP_SHAPES = ("ribbon", "coil", "hairpin")
CLIP_MIN_SKIN_MM = 5.0  # biopsy clips sit in the tissue, at least this far from the skin
METAL_LEVEL = (0.955, 0.985)  # linear display value of metal (1 = the top of the stored range)
METAL_NOISE = 0.003
_TRIES = 200


@dataclass
class ForeignObject:
    """One drawn foreign object in the pixel grid of its image.

    ``mask`` is every pixel the object touches (its anti-aliased edge included) and ``box`` its
    bounding box; ``shape`` is the clip's form (``ribbon``, ``coil``, ``hairpin``) or ``disc`` /
    ``line`` for the skin markers; ``size_mm`` the object's length (ball: diameter) and
    ``wire_mm`` the wire's thickness (ball: its diameter); ``cx``/``cy`` the centre in pixels.
    """

    kind: str
    shape: str
    mask: np.ndarray
    box: tuple[int, int, int, int]
    cx: float
    cy: float
    size_mm: float
    wire_mm: float

    @property
    def label(self) -> str:
        return FOREIGN_OBJECT_LABEL

    def to_dict(self) -> dict:
        """JSON-friendly record (no mask), as stored in ``phantom.json``."""
        return {
            "kind": self.kind,
            "shape": self.shape,
            "box": [int(v) for v in self.box],
            "cx": round(float(self.cx), 3),
            "cy": round(float(self.cy), 3),
            "size_mm": round(float(self.size_mm), 3),
            "wire_mm": round(float(self.wire_mm), 3),
        }


# ---------------------------------------------------------------------------------------------
# geometry (mm, centred on the origin, unrotated)


@dataclass
class _Geometry:
    shape: str
    polylines: list[np.ndarray]  # each (n, 2) x, y in mm
    discs: list[tuple[float, float, float]]  # x, y, radius in mm
    wire: float  # mm
    size: float  # mm

    def transformed(self, angle: float, cx: float, cy: float, ps: float) -> "_Geometry":
        """Rotated by ``angle`` and moved to the pixel position (cx, cy): pixel units."""
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s], [s, c]])
        centre = np.array([cx, cy])
        polys = [(p @ rot.T) / ps + centre for p in self.polylines]
        discs = []
        for x, y, r in self.discs:
            px, py = rot @ np.array([x, y])
            discs.append((px / ps + cx, py / ps + cy, r / ps))
        return _Geometry(self.shape, polys, discs, self.wire / ps, self.size / ps)


def _clip_geometry(rng: np.random.Generator) -> _Geometry:
    shape = CLIP_SHAPES[int(rng.integers(len(CLIP_SHAPES)))]
    length = float(rng.uniform(2.0, 5.0))
    wire = float(rng.uniform(0.3, 0.6))
    if shape == "ribbon":  # a zigzag band: 2-4 bends
        n = int(rng.integers(4, 7))
        x = np.linspace(-length / 2, length / 2, n)
        amp = float(rng.uniform(0.35, 0.7)) * length / (n - 1)
        y = amp * np.where(np.arange(n) % 2 == 0, 0.5, -0.5) + rng.normal(0.0, 0.08 * amp, n)
        pts = np.stack([x + rng.normal(0.0, 0.05 * length / n, n), y], 1)
    elif shape == "coil":  # a helix seen obliquely: loops along its axis
        wire = min(wire, 0.45)
        turns = max(1.5, length / float(rng.uniform(0.9, 1.4)))  # pitch 0.9-1.4 mm: the loops show
        radius = float(rng.uniform(0.35, 0.6))
        tilt = float(rng.uniform(0.3, 0.9))
        t = np.linspace(0.0, 1.0, int(turns * 24) + 2)
        phase = 2.0 * math.pi * turns * t
        x = (length - 2 * radius * tilt) * (t - 0.5) + radius * tilt * np.cos(phase)
        pts = np.stack([x, radius * np.sin(phase)], 1)
    else:  # hairpin: a U-bent wire with splayed legs
        leg = length
        width = float(rng.uniform(0.25, 0.45)) * length
        splay = float(rng.uniform(0.0, 0.35))
        a = np.linspace(math.pi / 2, 3 * math.pi / 2, 13)
        bend = np.stack([width / 2 * np.cos(a) - leg / 2 + width / 2, width / 2 * np.sin(a)], 1)
        top = np.array([[leg / 2, width / 2 * (1 + splay)]])
        bottom = np.array([[leg / 2, -width / 2 * (1 + splay)]])
        pts = np.concatenate([top, bend, bottom])
    return _Geometry(shape, [pts], [], wire, length)


def _bb_geometry(rng: np.random.Generator) -> _Geometry:
    d = float(rng.uniform(1.5, 4.0))
    return _Geometry("disc", [], [(0.0, 0.0, d / 2)], d, d)


def _line_geometry(rng: np.random.Generator, length: float) -> _Geometry:
    wire = float(rng.uniform(0.4, 0.6))
    pts = np.array([[-length / 2, 0.0], [length / 2, 0.0]])
    return _Geometry("line", [pts], [], wire, length)


# ---------------------------------------------------------------------------------------------
# rendering


def _overlap(d: np.ndarray, half_width: float, cell: float) -> np.ndarray:
    """Fraction of a cell (width ``cell``, centred at 0) covered by the band ``[d - hw, d + hw]``."""
    lo = np.maximum(d - half_width, -cell / 2)
    hi = np.minimum(d + half_width, cell / 2)
    return np.clip((hi - lo) / cell, 0.0, 1.0)


def _segment_distance(px, py, a, b):
    ab = b - a
    den = max(float(ab @ ab), 1e-12)
    t = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / den, 0.0, 1.0)
    return np.hypot(px - (a[0] + t * ab[0]), py - (a[1] + t * ab[1]))


def render_coverage(geom: _Geometry, image_shape, ps: float):
    """Anti-aliased coverage (0..1) of a geometry in pixel units: ``(coverage, (y0, x0))`` or None.

    Each pixel is split into k x k cells (k from the wire's thickness at this pixel spacing, 1-8)
    and each cell takes its analytic box-filtered coverage, so the object's edge and a wire
    thinner than a pixel both come out with the right area. None when the object leaves the image.
    """
    pts = [p for p in geom.polylines] + [np.array([[x, y]]) for x, y, _ in geom.discs]
    allp = np.concatenate(pts)
    reach = max([geom.wire / 2] + [r for _, _, r in geom.discs]) + 1.5
    x0 = int(math.floor(allp[:, 0].min() - reach))
    x1 = int(math.ceil(allp[:, 0].max() + reach))
    y0 = int(math.floor(allp[:, 1].min() - reach))
    y1 = int(math.ceil(allp[:, 1].max() + reach))
    rows, cols = image_shape
    if x0 < 1 or y0 < 1 or x1 > cols - 1 or y1 > rows - 1:
        return None
    k = int(np.clip(math.ceil(3.0 / max(geom.wire, 1e-6)), 1, 8))  # cells per pixel (wire in px)
    cell = 1.0 / k
    xs = x0 + (np.arange((x1 - x0) * k) + 0.5) * cell
    ys = y0 + (np.arange((y1 - y0) * k) + 0.5) * cell
    gx, gy = np.meshgrid(xs, ys)
    cov = np.zeros(gx.shape)
    for poly in geom.polylines:
        d = np.full(gx.shape, np.inf)
        for a, b in zip(poly[:-1], poly[1:]):
            np.minimum(d, _segment_distance(gx, gy, a, b), out=d)
        np.maximum(cov, _overlap(d, geom.wire / 2, cell), out=cov)
    for cx, cy, r in geom.discs:
        s = np.hypot(gx - cx, gy - cy) - r
        np.maximum(cov, np.clip(0.5 - s / cell, 0.0, 1.0), out=cov)
    cov = cov.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3))
    return cov, (y0, x0)


def _blend(image: np.ndarray, cov: np.ndarray, origin, rng, top: float, gamma: float) -> np.ndarray:
    """Metal over the image in the linear display (attenuation) domain; only covered pixels change."""
    y0, x0 = origin
    h, w = cov.shape
    level = float(rng.uniform(*METAL_LEVEL))
    metal = np.clip(level + METAL_NOISE * rng.standard_normal(cov.shape), 0.0, 1.0)
    win = image[y0:y0 + h, x0:x0 + w]
    lin = np.clip(win.astype(np.float64) / top, 0.0, 1.0) ** (1.0 / gamma)
    new = np.maximum(lin + (metal - lin) * cov, lin)  # metal only adds attenuation
    vals = top * new ** gamma
    if np.issubdtype(image.dtype, np.integer):
        vals = np.clip(np.rint(vals), 0, top)
    hit = cov > 0
    out = image.copy()
    out[y0:y0 + h, x0:x0 + w][hit] = vals[hit].astype(image.dtype)
    return out


# ---------------------------------------------------------------------------------------------
# placement


def _pick(rng, candidates: np.ndarray) -> tuple[float, float] | None:
    """A random position (x, y in pixels, sub-pixel) among the True pixels of ``candidates``."""
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        return None
    i = int(idx[int(rng.integers(idx.size))])
    r, c = divmod(i, candidates.shape[1])
    return c + float(rng.uniform(0.0, 1.0)), r + float(rng.uniform(0.0, 1.0))


def _fits(cov_origin, allowed: np.ndarray) -> bool:
    cov, (y0, x0) = cov_origin
    h, w = cov.shape
    return bool(allowed[y0:y0 + h, x0:x0 + w][cov > 0].all())


def _place(kind, image_shape, ps, breast_mask, allowed, rng):
    """Draw the geometry and its position; returns (pixel geometry, coverage, origin)."""
    dist = ndimage.distance_transform_edt(breast_mask) * ps  # mm to the nearest non-breast pixel
    if kind == "biopsy_clip":
        for relax in (1.0, 0.5, 0.0):
            # the centre sits half the longest clip (2.5 mm) further in, so the whole clip keeps clear
            cand = allowed & (dist >= max((CLIP_MIN_SKIN_MM + 2.5) * relax, 3.0 * ps))
            for _ in range(_TRIES // 3):
                geom = _clip_geometry(rng)
                pos = _pick(rng, cand)
                if pos is None:
                    break
                g = geom.transformed(float(rng.uniform(0, 2 * math.pi)), pos[0], pos[1], ps)
                cov = render_coverage(g, image_shape, ps)
                if cov is not None and _fits(cov, allowed):
                    return g, cov
    elif kind == "skin_marker_bb":
        for widen in (0.0, 2.0, 6.0, 20.0):
            for _ in range(_TRIES // 4):
                geom = _bb_geometry(rng)
                r = geom.discs[0][2]
                gap = float(rng.uniform(0.3, 3.0)) + widen
                tol = max(ps, 0.3)
                pos = _pick(rng, allowed & (np.abs(dist - (r + gap)) <= tol))
                if pos is None:
                    continue
                g = geom.transformed(0.0, pos[0], pos[1], ps)
                cov = render_coverage(g, image_shape, ps)
                if cov is not None and _fits(cov, allowed):
                    return g, cov
    elif kind == "skin_marker_line":
        for shrink in (1.0, 0.6, 0.35):
            for _ in range(_TRIES // 3):
                length = float(rng.uniform(10.0, 30.0)) * shrink
                depth = float(rng.uniform(1.5, 5.0))
                tol = max(ps, 0.3)
                band = allowed & (np.abs(dist - depth) <= tol)
                p = _pick(rng, band)
                if p is None:
                    continue
                ys, xs = np.nonzero(band)
                far = np.abs(np.hypot(xs + 0.5 - p[0], ys + 0.5 - p[1]) * ps - length) <= max(ps, 0.5)
                if not far.any():
                    continue
                j = int(rng.integers(int(far.sum())))
                q = (xs[far][j] + 0.5, ys[far][j] + 0.5)
                angle = math.atan2(q[1] - p[1], q[0] - p[0])
                real = math.hypot(q[0] - p[0], q[1] - p[1]) * ps
                geom = _line_geometry(rng, real)
                g = geom.transformed(angle, (p[0] + q[0]) / 2, (p[1] + q[1]) / 2, ps)
                cov = render_coverage(g, image_shape, ps)
                if cov is not None and _fits(cov, allowed):
                    return g, cov
    else:
        raise ValueError(f"foreign object kind must be one of {', '.join(FOREIGN_OBJECT_KINDS)}, not {kind!r}")
    raise ValueError(f"there is no room for a {kind.replace('_', ' ')} in this breast")


def _top_of(image: np.ndarray) -> float:
    if np.issubdtype(image.dtype, np.integer):
        return float((1 << max(8, int(image.max()).bit_length())) - 1)
    return 1.0


def draw_foreign_object(
    image: np.ndarray,
    spacing: float,
    breast_mask: np.ndarray,
    rng: np.random.Generator,
    kind: str,
    *,
    avoid: np.ndarray | None = None,
    top: float | None = None,
    gamma: float = GAMMA,
) -> tuple[np.ndarray, ForeignObject]:
    """Draw one metal foreign object on any 2D image; returns ``(image, ForeignObject)``.

    ``image`` holds for-presentation values (brighter = more attenuation): stored pixels
    (integers, white = ``top``, by default the top of the smallest bit depth >= 8 that holds the
    image's maximum) or a float display in [0, 1]. ``spacing`` is the pixel spacing in mm,
    ``breast_mask`` the breast (the object lies inside it, clear of ``avoid``), ``rng`` the
    object's own generator (give it its own stream, so the rest of the image does not depend on
    it), ``kind`` one of :data:`FOREIGN_OBJECT_KINDS`. The metal is blended in the linear display
    domain (``value = top * linear ** gamma``; pass ``gamma=1`` for an image linear in attenuation)
    towards 0.955-0.985 of white, by each pixel's anti-aliased coverage, so it comes out near the
    top of the display range after any window of the breast. The input is not modified; the
    returned copy differs from it only inside the record's ``mask`` (every pixel the object
    touches), whose bounding box is its ``box = (x0, y0, x1, y1)`` (x1/y1 exclusive). Raises
    ValueError when the breast has no room for the object.
    """
    image = np.asarray(image)
    breast_mask = np.asarray(breast_mask, dtype=bool)
    if image.ndim != 2 or breast_mask.shape != image.shape:
        raise ValueError("image and breast_mask must be 2D arrays of the same shape")
    if kind not in FOREIGN_OBJECT_KINDS:
        raise ValueError(f"foreign object kind must be one of {', '.join(FOREIGN_OBJECT_KINDS)}, not {kind!r}")
    ps = float(spacing)
    if not ps > 0:
        raise ValueError(f"pixel spacing must be positive, not {spacing!r}")
    top = _top_of(image) if top is None else float(top)
    allowed = breast_mask if avoid is None else breast_mask & ~np.asarray(avoid, dtype=bool)
    geom, (cov, origin) = _place(kind, image.shape, ps, breast_mask, allowed, rng)
    out = _blend(image, cov, origin, rng, top, float(gamma))
    mask = np.zeros(image.shape, dtype=bool)
    y0, x0 = origin
    h, w = cov.shape
    mask[y0:y0 + h, x0:x0 + w] = cov > 0
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    box = (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)
    allp = np.concatenate([p for p in geom.polylines] + [np.array([[x, y]]) for x, y, _ in geom.discs])
    cx, cy = (allp.min(axis=0) + allp.max(axis=0)) / 2
    obj = ForeignObject(kind=kind, shape=geom.shape, mask=mask, box=box, cx=float(cx), cy=float(cy),
                        size_mm=geom.size * ps, wire_mm=geom.wire * ps)
    return out, obj


def foreign_object_rng(seed) -> np.random.Generator:
    """The foreign-object stream of an image seed: independent of everything the image draws."""
    return np.random.default_rng(child(seed_sequence(seed), FOREIGN_OBJECT_STREAM))


def add_foreign_object(
    image: PhantomImage, seed=None, kind: str | None = None, kinds=FOREIGN_OBJECT_KINDS
) -> PhantomImage:
    """A copy of a simulated mammogram with one foreign object drawn on it.

    The object comes from the foreign-object stream of ``seed`` (default: the image's own seed),
    so the same seed always gives the same object and the pixels outside the object equal the
    input's. ``kind`` (default: drawn from ``kinds``) is one of :data:`FOREIGN_OBJECT_KINDS`.
    Objects keep 3 mm clear of the image's lesions; clips also stay off the pectoral muscle. The
    copy keeps the input's VOI windows (so its DICOM header equals the twin's) and lists the
    object in ``foreign_objects``.
    """
    seed = image.seed if seed is None else seed
    if seed is None:
        raise ValueError("add_foreign_object needs a seed when the image has none")
    rng = foreign_object_rng(seed)
    kinds = tuple(kinds)
    if not kinds or any(k not in FOREIGN_OBJECT_KINDS for k in kinds):
        raise ValueError(f"foreign object kinds must be taken from {', '.join(FOREIGN_OBJECT_KINDS)}")
    drawn = kinds[int(rng.integers(len(kinds)))]
    kind = drawn if kind is None else kind
    ps = image.pixel_spacing
    avoid = np.zeros(image.shape, dtype=bool)
    for les in image.lesions:
        avoid |= les.mask
    for obj in image.foreign_objects:
        avoid |= obj.mask
    if avoid.any():
        r = max(1, int(round(3.0 / ps)))
        avoid = ndimage.binary_dilation(avoid, iterations=r)
    if kind == "biopsy_clip" and image.pectoral_mask is not None:
        avoid |= image.pectoral_mask
    presets = image.window_presets()
    pixels, obj = draw_foreign_object(
        image.pixels, ps, image.breast_mask, rng, kind, avoid=avoid, top=float((1 << image.bits_stored) - 1)
    )
    return replace(image, pixels=pixels, foreign_objects=list(image.foreign_objects) + [obj], presets=presets)


__all__ = [
    "CLIP_SHAPES",
    "FOREIGN_OBJECT_KINDS",
    "FOREIGN_OBJECT_LABEL",
    "ForeignObject",
    "add_foreign_object",
    "draw_foreign_object",
    "foreign_object_rng",
]
