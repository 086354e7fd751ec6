"""Lesions of the phantom: masses, calcification clusters, architectural distortions, asymmetries.

Sizes are drawn in millimetres and converted with the pixel spacing. A lesion is rendered as one
or more *components*, local patches that change the tissue attenuation map before projection:

* ``p`` / ``mu``: a fraction of the path is replaced by lesion tissue of attenuation ``mu``
  (masses, asymmetries), so a mass in dense tissue is less conspicuous than in fat, as in real
  mammograms;
* ``add``: extra attenuation (calcium specks, spicules, distortion lines);
* ``warp``: the surrounding tissue is pulled towards a point (architectural distortion).

Each component has a depth offset and a depth of focus so the same lesion renders into a DBT
slice stack (sharp at its depth, blurred and faded away from it). Geometry is drawn in the
left-breast orientation; :func:`public_lesion` mirrors it for right breasts.

Conspicuity controls (a contrast-detail study writes the same seeds at several of them):

* ``contrast`` (default 1) multiplies every change the lesion makes to the tissue map: the
  replaced path fraction ``p`` and the extra attenuation ``add`` (so the attenuation change is
  exactly ``contrast`` times the nominal one) and the strength of a distortion's warp;
* ``size`` (default 1) multiplies every length of the lesion (outline, margins, spicules, specks,
  cluster spread, depth extent) by drawing it at its nominal size on a grid ``size`` times finer,
  so each class keeps its shape, texture and per-pixel contrast.

The anatomy never depends on either (its random streams are the image's, not the lesion's), so
the same seed at several conspicuities gives the same breast; a lesion keeps its position across
contrast scales (its placement can move with the size scale, which changes where it fits).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from inference.labels import LESION_CLASSES  # the one vocabulary of lesion classes

from .noise import F32, power_law_noise, smoothstep

MASS_SHAPES = ("round", "oval", "irregular", "spiculated")
DETAILS = {
    "mass": MASS_SHAPES,
    "calcification": ("cluster",),
    "architectural_distortion": ("radiating",),
    "asymmetry": ("focal",),
}


@dataclass
class PhantomLesion:
    """One lesion with its ground truth, in the pixel grid of the image it belongs to.

    ``box`` is ``(x0, y0, x1, y1)`` in pixels, origin top-left, ``x1``/``y1`` exclusive (the
    bounding box of ``mask``); ``cx``, ``cy`` and ``radius`` are in pixels with the same origin
    (pixel ``i`` spans ``[i, i + 1)``). ``slice_start``/``slice_end`` (0-based, inclusive) are set
    for DBT, where ``mask`` is the in-plane footprint. ``specks`` lists calcification specks as
    ``(x, y, diameter_mm)`` (plus the slice index for DBT).
    """

    cls: str
    detail: str
    mask: np.ndarray
    box: tuple[int, int, int, int]
    cx: float
    cy: float
    radius: float
    slice_start: int | None = None
    slice_end: int | None = None
    size_mm: float = 0.0
    specks: tuple = ()
    z_center: float | None = None
    contrast: float = 1.0  # the conspicuity scales it was drawn at (module notes)
    size_scale: float = 1.0

    def to_dict(self) -> dict:
        """JSON-friendly record (no mask)."""
        out = {
            "class": self.cls,
            "detail": self.detail,
            "box": [int(v) for v in self.box],
            "cx": round(float(self.cx), 3),
            "cy": round(float(self.cy), 3),
            "radius": round(float(self.radius), 3),
            "size_mm": round(float(self.size_mm), 3),
            "slice_start": self.slice_start,
            "slice_end": self.slice_end,
        }
        if self.contrast != 1.0 or self.size_scale != 1.0:
            out["contrast"] = round(float(self.contrast), 6)
            out["size_scale"] = round(float(self.size_scale), 6)
        if self.specks:
            out["specks"] = [[round(float(v), 3) for v in s] for s in self.specks]
        return out


@dataclass
class Component:
    y0: int
    x0: int
    p: np.ndarray | None = None
    mu: float = 0.0
    add: np.ndarray | None = None
    footprint: np.ndarray | None = None
    dz: float = 0.0  # mm, depth offset from the lesion centre
    focus: float = 0.5  # mm, half-depth rendered sharp
    fade: float = 2.0  # mm, e-folding of the weight beyond the focus
    warp: tuple | None = None  # (cx_px, cy_px, strength, sigma_px, radius_px)
    # DBT: the lesion's cross-section in its own slice (a slice is fully inside the lesion, so it
    # is far more conspicuous than the path fraction of a projection); it shrinks like a
    # sphere's cross-section away from the centre depth (``focus`` = half depth extent)
    p_slice: np.ndarray | None = None
    centre: tuple[float, float] | None = None  # (row, col) in patch pixel coordinates
    mu_slice: float | None = None  # lesion attenuation seen in a DBT slice (default: mu)


@dataclass
class LesionModel:
    cls: str
    detail: str
    cx: float  # mm, left orientation
    cy: float
    radius: float  # mm (nominal)
    extent: float  # mm (everything it draws)
    size_mm: float
    z_half: float  # mm, half its depth extent (DBT)
    components: list[Component] = field(default_factory=list)
    specks: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y mm, d, dz
    z_center: float = 0.0  # mm (DBT)
    contrast: float = 1.0  # multiplies every change the lesion makes to the tissue map
    size_scale: float = 1.0  # the lengths are size_scale x those of the nominal draw (size_mm included)


# ---------------------------------------------------------------------------------------------
# patches


def _patch(cx, cy, half, ps, shape):
    """Pixel window around (cx, cy) mm of half-size ``half`` mm, and mm coordinates in it."""
    x0 = int(math.floor((cx - half) / ps))
    y0 = int(math.floor((cy - half) / ps))
    x1 = int(math.ceil((cx + half) / ps))
    y1 = int(math.ceil((cy + half) / ps))
    xx = ((np.arange(x0, x1, dtype=F32) + F32(0.5)) * F32(ps) - F32(cx))[None, :]
    yy = ((np.arange(y0, y1, dtype=F32) + F32(0.5)) * F32(ps) - F32(cy))[:, None]
    return y0, x0, xx, yy


def _radial_function(rng, kmax, amp, min_amp=0.0):
    """A smooth periodic radius multiplier ``f(theta)``, max-normalised to 1."""
    ks = np.arange(2, kmax + 1)
    a = rng.uniform(0, 1, len(ks)) * amp / ks**0.6
    if min_amp and a.max() < min_amp:
        a[int(rng.integers(0, min(3, len(ks))))] = min_amp
    ph = rng.uniform(0, 2 * math.pi, len(ks))
    t = np.linspace(0, 2 * math.pi, 721)
    f = 1.0 + (a[:, None] * np.cos(ks[:, None] * t[None, :] + ph[:, None])).sum(0)
    f = f / f.max()
    return lambda th: np.interp(np.mod(th, 2 * math.pi), t, f).astype(F32)


def _blur(arr, sigma_px):
    if sigma_px <= 0.05:
        return arr
    return ndimage.gaussian_filter(arr, sigma_px, mode="constant")


def _segment_field(xx, yy, x0, y0, x1, y1):
    """Projection parameter t along the segment and distance to it (mm)."""
    dx, dy = x1 - x0, y1 - y0
    L2 = max(dx * dx + dy * dy, 1e-9)
    t = ((xx - x0) * dx + (yy - y0) * dy) / F32(L2)
    tc = np.clip(t, 0.0, 1.0)
    px = x0 + tc * dx
    py = y0 + tc * dy
    return t, np.hypot(xx - px, yy - py)


# ---------------------------------------------------------------------------------------------
# the four classes


def _mass(rng, bm, cx, cy, diameter, detail) -> LesionModel:
    ps = bm.pixel_spacing
    r = diameter / 2.0
    spic_len = 0.0
    if detail == "spiculated":
        spic_len = min(r * rng.uniform(0.6, 1.2), 15.0)
    extent = r + spic_len
    half = extent + 2.5
    y0, x0, xx, yy = _patch(cx, cy, half, ps, bm.shape)
    rho = np.hypot(xx, yy)
    th = np.arctan2(yy, xx)
    if detail == "round":
        rth = F32(r) * (F32(1.0) - F32(0.03) * np.cos(2 * (th - rng.uniform(0, math.pi))))
        margin = rng.uniform(0.1, 0.3)
        z_half = r
    elif detail == "oval":
        ang = rng.uniform(0, math.pi)
        q = rng.uniform(0.5, 0.75)
        c, s = math.cos(ang), math.sin(ang)
        u = xx * F32(c) + yy * F32(s)
        v = -xx * F32(s) + yy * F32(c)
        rth = None
        uu = np.sqrt((u / F32(r)) ** 2 + (v / F32(r * q)) ** 2)
        margin = rng.uniform(0.15, 0.4)
        z_half = r * q
    elif detail == "irregular":
        f = _radial_function(rng, 8, rng.uniform(0.25, 0.45), min_amp=0.15)
        rth = F32(r) * f(th)
        margin = rng.uniform(0.4, 0.9)
        z_half = 0.8 * r
    else:  # spiculated core
        f = _radial_function(rng, 6, 0.15)
        rth = F32(r) * f(th)
        margin = rng.uniform(0.25, 0.5)
        z_half = 0.8 * r
    if rth is not None:
        uu = rho / np.maximum(rth, F32(1e-3))
    footprint = uu < 1.0
    prof = np.sqrt(np.clip(1.0 - uu * uu, 0.0, 1.0)).astype(F32)
    prof = _blur(prof, margin / ps)
    pmax = min(0.7, 1.5 * 2 * z_half / bm.thickness) * rng.uniform(0.85, 1.15)
    mu = bm.mu_gland + rng.uniform(0.12, 0.25)
    p_slice = _blur(footprint.astype(F32), margin / ps) * F32(rng.uniform(0.55, 0.8))
    centre = (cy / ps - 0.5 - y0, cx / ps - 0.5 - x0)
    comps = [
        Component(
            y0, x0, p=prof * F32(pmax), mu=mu, footprint=footprint, focus=z_half, fade=0.3 * z_half + 1.0,
            p_slice=p_slice, centre=centre, mu_slice=bm.mu_gland + rng.uniform(0.02, 0.1),
        )
    ]
    if detail == "spiculated":
        add = np.zeros_like(prof)
        fp = np.zeros_like(footprint)
        n = int(rng.integers(12, 31))
        base = rng.uniform(0, 2 * math.pi)
        angles = base + np.sort(rng.uniform(0, 2 * math.pi, n))
        for a in angles:
            L = spic_len * rng.uniform(0.45, 1.0)
            w = rng.uniform(0.35, 0.9)
            start = r * 0.6
            bend = rng.normal(0, 0.12)
            xa, ya = start * math.cos(a), start * math.sin(a)
            xm, ym = (r + 0.5 * L) * math.cos(a + bend * 0.5), (r + 0.5 * L) * math.sin(a + bend * 0.5)
            xb, yb = (r + L) * math.cos(a + bend), (r + L) * math.sin(a + bend)
            for (sx0, sy0, sx1, sy1, w0, w1) in ((xa, ya, xm, ym, w, 0.6 * w), (xm, ym, xb, yb, 0.6 * w, 0.05)):
                t, d = _segment_field(xx, yy, sx0, sy0, sx1, sy1)
                inside = (t >= 0) & (t <= 1)
                width = F32(w0) + (F32(w1) - F32(w0)) * np.clip(t, 0, 1)
                val = np.exp(-((d / (F32(0.5) * width)) ** 2)) * inside
                np.maximum(add, val * F32(0.6 + 0.4 * (w0 / w)), out=add)
                fp |= inside & (d < np.maximum(0.5 * width, 0.75 * ps))
        add *= F32(rng.uniform(0.05, 0.1) * 50.0 / bm.thickness)
        add = _blur(add, 0.5)
        comps.append(Component(y0, x0, add=add, footprint=fp, focus=1.5, fade=2.5))
    return LesionModel("mass", detail, cx, cy, r, extent, diameter, z_half, comps)


def _calcification(rng, bm, cx, cy, diameter) -> LesionModel:
    ps = bm.pixel_spacing
    n = int(rng.integers(3, 21))
    R = diameter / 2.0
    ang = rng.uniform(0, math.pi)
    q = rng.uniform(0.5, 1.0)
    pos = []
    tries = 0
    while len(pos) < n and tries < 5000:
        tries += 1
        u, v = rng.uniform(-1, 1, 2)
        if u * u + v * v > 1:
            continue
        x = R * (u * math.cos(ang) - q * v * math.sin(ang))
        y = R * (u * math.sin(ang) + q * v * math.cos(ang))
        if all(math.hypot(x - a, y - b) > 0.7 + 1.5 * ps for a, b in pos):
            pos.append((x, y))
    kappa = rng.uniform(1.6, 2.6) * 50.0 / bm.thickness
    comps, specks = [], []
    zspread = min(R * 0.5, 4.0)
    xs = [p[0] for p in pos]
    ys = [p[1] for p in pos]
    # the nominal cluster centre is the centre of its specks
    ccx, ccy = cx + 0.5 * (max(xs) + min(xs)), cy + 0.5 * (max(ys) + min(ys))
    for x, y in pos:
        d = 0.1 + 0.4 * rng.uniform() ** 1.2
        aspect = rng.uniform(1.0, 2.2)
        a_ = rng.uniform(0, math.pi)
        sx, sy = cx + x, cy + y
        comp = _speck(sx, sy, d, aspect, a_, kappa, ps)
        comp.dz = float(rng.uniform(-zspread, zspread))
        comps.append(comp)
        specks.append((sx, sy, d, comp.dz))
    rad = max(math.hypot(s[0] - ccx, s[1] - ccy) + s[2] / 2 for s in specks)
    lm = LesionModel("calcification", "cluster", ccx, ccy, rad, R + 1.0, diameter, zspread + 1.0, comps)
    lm.specks = specks
    return lm


def _speck(sx, sy, d, aspect, ang, kappa, ps) -> Component:
    """One calcium speck, supersampled so intensity scales with its area even below a pixel."""
    half = d / 2 + ps
    x0 = int(math.floor((sx - half) / ps))
    y0 = int(math.floor((sy - half) / ps))
    x1 = int(math.ceil((sx + half) / ps))
    y1 = int(math.ceil((sy + half) / ps))
    ss = int(min(64, max(4, math.ceil(ps / min(0.02, d / 10.0)))))
    off = (np.arange(ss, dtype=np.float64) + 0.5) / ss
    xs = ((np.arange(x0, x1)[:, None] + off[None, :]).ravel() * ps - sx)[None, :]
    ys = ((np.arange(y0, y1)[:, None] + off[None, :]).ravel() * ps - sy)[:, None]
    a = d / 2
    b = a / aspect
    c, s = math.cos(ang), math.sin(ang)
    u = (xs * c + ys * s) / a
    v = (-xs * s + ys * c) / b
    rr = u * u + v * v
    thick = 2 * b * np.sqrt(np.clip(1 - rr, 0, None))  # projected thickness, mm
    h, w = y1 - y0, x1 - x0
    thick = thick.reshape(h, ss, w, ss).mean(axis=(1, 3))
    cover = (rr < 1).reshape(h, ss, w, ss).any(axis=(1, 3))
    return Component(y0, x0, add=(thick * kappa).astype(F32), footprint=cover, focus=0.5, fade=1.0)


def _distortion(rng, bm, cx, cy, radius) -> LesionModel:
    ps = bm.pixel_spacing
    half = radius * 1.6 + 1.0
    y0, x0, xx, yy = _patch(cx, cy, half, ps, bm.shape)
    add = np.zeros((yy.shape[0], xx.shape[1]), F32)
    fp = np.zeros(add.shape, bool)
    n = int(rng.integers(10, 25))
    angles = np.linspace(0, 2 * math.pi, n, endpoint=False) + rng.uniform(0, 2 * math.pi)
    angles += rng.normal(0, 0.5 * math.pi / n, n)
    for a in angles:
        L = radius * rng.uniform(0.5, 1.0)
        start = rng.uniform(0.5, 2.0)
        w = rng.uniform(0.25, 0.6)
        xa, ya = start * math.cos(a), start * math.sin(a)
        xb, yb = L * math.cos(a), L * math.sin(a)
        t, d = _segment_field(xx, yy, xa, ya, xb, yb)
        inside = (t >= 0) & (t <= 1)
        fade = smoothstep(t, 1.0, 0.6) * smoothstep(t, 0.0, 0.08)
        val = np.exp(-((d / F32(0.5 * w)) ** 2)) * fade * inside
        np.maximum(add, val, out=add)
        fp |= inside & (d < max(0.5 * w, 0.75 * ps)) & (t < 0.95)
    add *= F32(rng.uniform(0.05, 0.09) * 50.0 / bm.thickness)
    warp = (cx / ps, cy / ps, float(rng.uniform(0.25, 0.45)), 0.5 * radius / ps, 1.3 * radius / ps)
    comp = Component(y0, x0, add=add, footprint=fp, focus=1.5, fade=2.5, warp=warp)
    return LesionModel("architectural_distortion", "radiating", cx, cy, radius, radius, 2 * radius, 3.0, [comp])


def _asymmetry(rng, bm, cx, cy, diameter) -> LesionModel:
    ps = bm.pixel_spacing
    R = diameter / 2.0
    half = R * 1.35 + 1.0
    y0, x0, xx, yy = _patch(cx, cy, half, ps, bm.shape)
    ang = rng.uniform(0, math.pi)
    q = rng.uniform(0.6, 1.0)
    c, s = math.cos(ang), math.sin(ang)
    u = xx * F32(c) + yy * F32(s)
    v = (-xx * F32(s) + yy * F32(c)) / F32(q)
    rho = np.hypot(u, v)
    th = np.arctan2(v, u)
    for _ in range(20):
        f = _radial_function(rng, 5, 0.55, min_amp=0.22)
        uu = rho / (F32(R) * f(th))
        prof = smoothstep(uu, 1.1, 0.5)
        prof = _blur(prof, 0.12 * R / ps)
        footprint = prof > 0.3
        if footprint.sum() > 10 and _solidity(footprint) < 0.93:
            break
    tex = power_law_noise(rng, prof.shape, ps, 3.0, f_low=1.0 / (2 * R))
    p = prof * F32(rng.uniform(0.4, 0.6)) * np.clip(F32(0.8) + F32(0.25) * tex, 0.3, 1.3)
    p = p.astype(F32)
    comp = Component(
        y0, x0, p=p, mu=bm.mu_gland, footprint=footprint, focus=0.4 * R, fade=0.3 * R,
        p_slice=p * F32(0.75 / max(float(p.max()), 1e-3)), centre=(cy / ps - 0.5 - y0, cx / ps - 0.5 - x0),
    )
    return LesionModel("asymmetry", "focal", cx, cy, R, R * 1.3, diameter, 0.4 * R, [comp])


def _solidity(mask) -> float:
    from skimage.morphology import convex_hull_image

    hull = convex_hull_image(mask)
    return float(mask.sum()) / max(float(hull.sum()), 1.0)


# ---------------------------------------------------------------------------------------------
# placement


def _draw_size(rng, cls):
    if cls == "mass":
        detail = MASS_SHAPES[int(rng.integers(0, len(MASS_SHAPES)))]
        return detail, 5.0 + 25.0 * rng.uniform() ** 1.3
    if cls == "calcification":
        return "cluster", rng.uniform(5.0, 15.0)
    if cls == "architectural_distortion":
        return "radiating", rng.uniform(6.0, 15.0)
    if cls == "asymmetry":
        return "focal", rng.uniform(15.0, 40.0)
    raise ValueError(f"lesion class must be one of {', '.join(LESION_CLASSES)}, not {cls!r}")


def _extent(cls, detail, size):
    if cls == "mass":
        return size / 2 + (min(0.6 * size, 15.0) if detail == "spiculated" else 0.0)
    if cls == "calcification":
        return size / 2 + 0.5
    if cls == "architectural_distortion":
        return size * 1.05
    return size / 2 * 1.3


_MIN_SIZE = {"mass": 5.0, "calcification": 5.0, "architectural_distortion": 6.0, "asymmetry": 15.0}


def _check_scale(name: str, value) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"the lesion {name} scale must be a number >= 0, not {value!r}")
    return v


class _FinerGrid:
    """The attributes of a breast model the lesion builders read, on a grid ``1/scale`` as fine."""

    def __init__(self, bm, scale: float):
        self.pixel_spacing = bm.pixel_spacing / scale
        self.shape = bm.shape
        self.thickness = bm.thickness
        self.mu_gland = bm.mu_gland


def _rescale(lm: LesionModel, s: float) -> LesionModel:
    """A lesion drawn at its nominal size on a grid ``s`` times finer, back in real millimetres."""
    lm.cx, lm.cy, lm.radius, lm.extent, lm.size_mm, lm.z_half = (
        v * s for v in (lm.cx, lm.cy, lm.radius, lm.extent, lm.size_mm, lm.z_half)
    )
    for comp in lm.components:
        comp.dz, comp.focus, comp.fade = comp.dz * s, comp.focus * s, comp.fade * s
    lm.specks = [(x * s, y * s, d * s, dz * s) for x, y, d, dz in lm.specks]
    lm.size_scale = s
    return lm


def draw_lesions(rng, bm, cf, classes, *, thickness_range=None, contrast: float = 1.0,
                 size: float = 1.0) -> list[LesionModel]:
    """Draw and place one lesion per requested class inside the breast (not in the muscle).

    ``contrast`` and ``size`` are the conspicuity scales of the module notes; with both 1 the
    lesions are exactly the nominal ones. A size scale draws the same random numbers (the lesion's
    own stream), so a class keeps its shape; placement searches for a spot the scaled lesion fits.
    """
    contrast = _check_scale("contrast", contrast)
    size = _check_scale("size", size)
    if size <= 0.0:
        raise ValueError("the lesion size scale must be above 0")
    H, W = bm.size_mm
    step = bm.pixel_spacing * cf.factor
    xg = np.broadcast_to(cf.x, cf.sd.shape)
    yg = np.broadcast_to(cf.y, cf.sd.shape)
    taken: list[tuple[float, float, float]] = []
    if bm.lymph_node is not None:
        x, y, a, _, _ = bm.lymph_node
        taken.append((x, y, a + 2.0))
    drawn = [_draw_size(rng, cls) for cls in classes]
    scale = size  # the nominal sizes below stay nominal; placement and rendering scale them
    # place the largest first: small lesions fit in the gaps the big ones leave
    order = sorted(range(len(classes)), key=lambda i: -_extent(classes[i], *drawn[i]))
    out: list[LesionModel | None] = [None] * len(classes)
    for i in order:
        cls = classes[i]
        detail, size = drawn[i]  # nominal (unscaled) millimetres
        spacing = 1.0  # lesions keep apart; relaxed to half if the breast is crowded
        while True:
            ext = _extent(cls, detail, size) * scale
            ok = cf.sd >= ext + 3.0
            ok &= (xg >= ext + 2.0) & (xg <= W - ext - 1.0) & (yg >= ext + 1.0) & (yg <= H - ext - 1.0)
            if cf.pect is not None:
                ok &= cf.pect <= -(ext + 2.0)
            for (tx, ty, tr) in taken:
                ok &= np.hypot(xg - tx, yg - ty) >= spacing * (tr + ext) + 2.0
            idx = np.flatnonzero(ok)
            if len(idx):
                break
            if size <= _MIN_SIZE[cls] and spacing == 1.0 and taken:
                spacing, size = 0.5, drawn[i][1]
                continue
            if size <= _MIN_SIZE[cls]:
                raise ValueError(
                    f"the breast is too small to hold the {cls.replace('_', ' ')} lesion(s); use a larger shape"
                )
            size = max(_MIN_SIZE[cls], size * 0.85)
        w = (0.25 + cf.envelope.ravel()[idx]).astype(np.float64)
        pick = idx[int(rng.choice(len(idx), p=w / w.sum()))]
        cx = float(xg.ravel()[pick] + rng.uniform(-0.5, 0.5) * step)
        cy = float(yg.ravel()[pick] + rng.uniform(-0.5, 0.5) * step)
        # a scaled lesion is its nominal self drawn on a finer grid around the same pixel
        grid, gx, gy = (bm, cx, cy) if scale == 1.0 else (_FinerGrid(bm, scale), cx / scale, cy / scale)
        if cls == "mass":
            lm = _mass(rng, grid, gx, gy, size, detail)
        elif cls == "calcification":
            lm = _calcification(rng, grid, gx, gy, size)
        elif cls == "architectural_distortion":
            lm = _distortion(rng, grid, gx, gy, size)
        else:
            lm = _asymmetry(rng, grid, gx, gy, size)
        if scale != 1.0:
            _rescale(lm, scale)
        lm.contrast = contrast
        taken.append((lm.cx, lm.cy, ext))
        if thickness_range is not None:
            lo, hi = thickness_range
            zh = min(lm.z_half, 0.45 * (hi - lo))
            lm.z_center = float(rng.uniform(lo + zh + 0.5, hi - zh - 0.5)) if hi - lo > 2 * zh + 1 else 0.5 * (lo + hi)
        out[i] = lm
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# rendering


def _region(shape, y0, x0, h, w):
    """Clip a patch placed at (y0, x0) to the image: image slices and patch slices."""
    ya, xa = max(0, y0), max(0, x0)
    yb, xb = min(shape[0], y0 + h), min(shape[1], x0 + w)
    if yb <= ya or xb <= xa:
        return None
    return (slice(ya, yb), slice(xa, xb)), (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))


def _apply_warp(tex, warp, weight):
    cxp, cyp, strength, sigma, radius = warp
    strength *= weight
    if strength <= 1e-3:
        return
    r = int(math.ceil(radius * 1.5)) + 2
    ya, yb = max(0, int(cyp) - r), min(tex.shape[0], int(cyp) + r + 1)
    xa, xb = max(0, int(cxp) - r), min(tex.shape[1], int(cxp) + r + 1)
    if yb <= ya or xb <= xa:
        return
    yy = (np.arange(ya, yb, dtype=F32) + F32(0.5) - F32(cyp))[:, None]
    xx = (np.arange(xa, xb, dtype=F32) + F32(0.5) - F32(cxp))[None, :]
    rho2 = xx * xx + yy * yy
    fac = F32(strength) * np.exp(-rho2 / F32(2 * sigma * sigma))
    fac *= F32(1.0) - smoothstep(np.sqrt(rho2), 0.8 * radius, radius)
    fac += F32(1.0)
    sy = yy * fac + F32(cyp - 0.5 - ya)
    sx = xx * fac + F32(cxp - 0.5 - xa)
    sy, sx = np.broadcast_arrays(sy, sx)
    patch = tex[ya:yb, xa:xb]
    tex[ya:yb, xa:xb] = ndimage.map_coordinates(patch, [sy, sx], order=1, mode="nearest")


def _shrink(arr, centre, q):
    """The patch scaled by ``q`` about ``centre`` (row, col), same size."""
    if q >= 0.999:
        return arr
    cy, cx = centre
    yy = (np.arange(arr.shape[0], dtype=F32)[:, None] - F32(cy)) / F32(q) + F32(cy)
    xx = (np.arange(arr.shape[1], dtype=F32)[None, :] - F32(cx)) / F32(q) + F32(cx)
    yy, xx = np.broadcast_arrays(yy, xx)
    return ndimage.map_coordinates(arr, [yy, xx], order=1, mode="constant", cval=0.0).astype(F32)


def _blur_pad(arr, sy, sx):
    """Blur with (sy, sx) pixel sigmas, padding so nothing is cut; returns (array, pad)."""
    if sy <= 0.05 and sx <= 0.05:
        return arr, 0
    pad = int(math.ceil(3 * max(sy, sx))) + 1
    big = np.zeros((arr.shape[0] + 2 * pad, arr.shape[1] + 2 * pad), F32)
    big[pad:-pad, pad:-pad] = arr
    return ndimage.gaussian_filter(big, (sy, sx), mode="constant"), pad


def render_lesions(tex, lesions, *, z=None, blur=(0.0, 0.0)) -> None:
    """Render lesions into the tissue map ``tex`` (left orientation), in place.

    For a 2D mammogram ``z`` is None (all components, sharp). For a DBT slice ``z`` is the
    slice depth in mm and ``blur`` the in-plane sigma per mm of defocus (rows, cols), in pixels.
    """
    for lm in lesions:
        for comp in lm.components:
            slice_p = None
            if z is None:
                wgt, sy, sx = 1.0, 0.0, 0.0
            else:
                dz = abs(z - (lm.z_center + comp.dz))
                excess = max(0.0, dz - comp.focus)
                wgt = math.exp(-excess / max(comp.fade, 1e-3))
                if wgt < 0.02:
                    continue
                sy, sx = blur[0] * excess, blur[1] * excess
                if comp.p_slice is not None:
                    q = math.sqrt(max(1.0 - (min(dz, comp.focus) / max(comp.focus, 1e-3)) ** 2, 0.0))
                    slice_p = _shrink(comp.p_slice, comp.centre, max(q, 0.3))
            if comp.warp is not None:
                _apply_warp(tex, comp.warp, wgt * lm.contrast)
            for kind in ("p", "add"):
                arr = getattr(comp, kind)
                if kind == "p" and slice_p is not None:
                    arr = slice_p
                if arr is None:
                    continue
                arr, pad = _blur_pad(arr, sy, sx)
                reg = _region(tex.shape, comp.y0 - pad, comp.x0 - pad, arr.shape[0], arr.shape[1])
                if reg is None:
                    continue
                (iy, ix), (py, px) = reg
                a = arr[py, px]
                if wgt * lm.contrast != 1.0:
                    a = a * F32(wgt * lm.contrast)
                if kind == "p":
                    mu = comp.mu if slice_p is None or comp.mu_slice is None else comp.mu_slice
                    t = tex[iy, ix]
                    t += a * (F32(mu) - t)
                else:
                    tex[iy, ix] += a


def lesion_footprint(lm: LesionModel, shape) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for comp in lm.components:
        if comp.footprint is None:
            continue
        reg = _region(shape, comp.y0, comp.x0, *comp.footprint.shape)
        if reg is None:
            continue
        (iy, ix), (py, px) = reg
        mask[iy, ix] |= comp.footprint[py, px]
    return mask


def public_lesion(
    lm: LesionModel, shape, allowed: np.ndarray, ps: float, *, flip: bool, slices=None
) -> PhantomLesion:
    """The ground-truth record of a placed lesion in the final image orientation."""
    mask = lesion_footprint(lm, shape)
    mask &= allowed
    if not mask.any():
        raise RuntimeError("a lesion ended up outside the breast (internal error)")
    cols = shape[1]
    cx, cy, radius = lm.cx / ps, lm.cy / ps, lm.radius / ps
    specks = []
    for sx, sy, d, dz in lm.specks:
        rec = (sx / ps, sy / ps, d)
        if slices is not None:
            rec = rec + (int(round((lm.z_center + dz) - 0.5)),)
        specks.append(rec)
    if flip:
        mask = mask[:, ::-1]
        cx = cols - cx
        specks = [(cols - s[0],) + tuple(s[1:]) for s in specks]
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    box = (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)
    s0 = s1 = None
    zc = None
    if slices is not None:
        n = slices
        zc = lm.z_center - 0.5  # slice k is centred at k + 0.5 mm
        if lm.cls == "calcification":
            zs = [lm.z_center + s[3] for s in lm.specks]
            lo, hi = min(zs) - 1.0, max(zs) + 1.0
        else:
            lo, hi = lm.z_center - lm.z_half, lm.z_center + lm.z_half
        s0 = int(np.clip(math.floor(lo), 0, n - 1))
        s1 = int(np.clip(math.ceil(hi) - 1, s0, n - 1))
    return PhantomLesion(
        cls=lm.cls,
        detail=lm.detail,
        mask=np.ascontiguousarray(mask),
        box=box,
        cx=float(cx),
        cy=float(cy),
        radius=float(radius),
        slice_start=s0,
        slice_end=s1,
        size_mm=float(lm.size_mm),
        specks=tuple(specks),
        z_center=zc,
        contrast=float(lm.contrast),
        size_scale=float(lm.size_scale),
    )
