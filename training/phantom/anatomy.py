"""Breast anatomy of the phantom: outline, skin, nipple, pectoral muscle, parenchyma, detector.

Everything is built in the LEFT-breast orientation (chest wall at column 0, nipple pointing
right, coordinates in mm with pixel ``i`` centred at ``(i + 0.5) * spacing``); right breasts are
mirrored at the very end by the callers.

Image formation (display units, "for presentation": brighter = more attenuation):

* The outline is a smooth closed curve (CC: a tilted super-ellipse; MLO: a spline from the axilla
  over the nipple to the inframammary fold) with a nipple bump and small skin wiggles. It is
  star-shaped about an origin behind the chest wall (inside/outside is a polar test); the
  distance to the skin is exact (nearest outline segment, k-d tree) on a ~0.45 mm grid and
  upsampled bilinearly, which is smooth enough for a crisp, anti-aliased skin edge.
* The compressed breast has a rounded edge of radius ``R`` (half the compressed thickness); the
  projected path length ``T(d)`` and the path through the skin ``S(d)`` follow from the distance
  ``d`` to the skin, which gives both the thickness fall-off and the thin skin line.
  For-presentation processing is mimicked by partial peripheral equalisation ``/ T**eta``, a
  local contrast enhancement of the tissue map and a presentation curve (gamma) on the output.
* Parenchyma: a Gaussian field with power spectrum ``1/f**beta`` (beta in [2.5, 3.5]) is pushed
  through a soft threshold whose level follows a smooth fibroglandular envelope (a cone behind
  the nipple, none in the subcutaneous and retromammary fat) and the breast density; a fine web
  (Cooper's ligaments / fat-lobule septa), ducts converging on the nipple and a few vessels are
  added; MLO adds the pectoral muscle (bright wedge, slightly curved edge, fibre texture) and
  sometimes an axillary lymph node.
* Detector: Gaussian electronic noise plus signal-dependent quantum noise, then 12/14-bit values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

from inference.preprocess import block_mean

from .noise import (
    F32,
    band_pass_filter,
    filtered_fields,
    low_pass_filter,
    power_law_filter,
    power_law_noise,
    smoothstep,
    upsample,
)

VIEWS = ("CC", "MLO")
LATERALITIES = ("L", "R")
P_MAX = 1.3  # display value mapped to the top of the stored range
GAMMA = 0.65  # presentation curve: lifts fat to mid-grey as vendors' for-presentation LUTs do
GLAND_EDGE_CUTOFF = 0.8  # cycles/mm: glandular boundaries are smooth below ~0.5 mm
ENHANCE_SIGMA = 2.5  # mm: scale of the for-presentation local contrast enhancement
# The projected glandular fraction sums many tissue layers through the compressed breast, so it
# varies far less from millimetre to millimetre than one thresholded layer would: the texture
# field enters the threshold at 0.3 of the envelope's weight and the full-band term is small.
# Measured against the mini-MIAS normal films at 128 px (image minus its Gaussian blur, sigma
# 1.5 px, relative to the breast's std): phantom 0.21 (0.42 before), films 0.16; the 1/f^beta
# slope at 0.1-0.6 cycles/mm stays at the drawn beta (films: median 2.96).
GLAND_FIELD_WEIGHT = 0.3
GLAND_TEXTURE = (0.1, 0.02)  # amplitude of the full-band texture in the gland: slope in g, floor


@dataclass
class Vessel:
    points: np.ndarray  # (n, 2) x, y in mm
    width: float  # mm at the root
    contrast: float  # attenuation units
    depth: float  # 0..1 through the compressed breast (DBT)


@dataclass
class BreastModel:
    """All random draws that define one breast (left orientation, millimetres)."""

    view: str
    shape: tuple[int, int]
    pixel_spacing: float
    thickness: float  # compressed thickness, mm
    skin: float  # skin thickness, mm
    eta: float  # peripheral equalisation exponent
    density: float  # 0 fatty .. 1 extremely dense
    beta: float  # power-law exponent of the parenchyma
    mu_fat: float
    mu_gland: float
    mu_skin: float
    mu_muscle: float
    background: float
    noise_electronic: float
    noise_quantum: float
    origin: tuple[float, float]
    phi_table: np.ndarray
    r_table: np.ndarray
    outline: np.ndarray  # (n, 2) dense skin outline, mm
    nipple: tuple[float, float]  # tip, mm
    nipple_axis: float  # angle (rad) from the nipple back into the breast
    gland_halfangle: float
    gland_offset: float
    subcutaneous: float  # mm of subcutaneous fat
    retromammary: float  # mm of fat in front of the chest wall / muscle
    lig_scale: float  # mm, fat-lobule size
    lig_strength: float
    duct_strength: float
    pectoral: tuple[float, float, float] | None  # (x at top edge, y at chest wall, exponent)
    vessels: list[Vessel] = field(default_factory=list)
    lymph_node: tuple[float, float, float, float, float] | None = None  # x, y, a, b, angle (mm)
    coarse_factor: int = 1
    lowfreq_seed: int = 0
    enhance_gain: float = 0.1
    _tree: object = field(default=None, repr=False, compare=False)

    @property
    def edge_radius(self) -> float:
        return 0.5 * self.thickness

    @property
    def size_mm(self) -> tuple[float, float]:
        return self.shape[0] * self.pixel_spacing, self.shape[1] * self.pixel_spacing


# ---------------------------------------------------------------------------------------------
# drawing the breast


def _outline_cc(rng, W, H):
    y0 = rng.uniform(0.46, 0.54) * H
    h_top = min(rng.uniform(0.34, 0.45) * H, y0 - 0.03 * H)
    h_bot = min(rng.uniform(0.34, 0.45) * H, 0.97 * H - y0)
    xn = rng.uniform(0.55, 0.80) * W
    yn = y0 + rng.uniform(-0.05, 0.05) * H
    c = rng.uniform(0.02, 0.15) * W
    p = rng.uniform(2.0, 2.6)
    t = np.linspace(-math.pi / 2, math.pi / 2, 4001)
    ct = np.cos(t).clip(0, None)
    x = (xn + c) * ct ** (2.0 / p) - c
    h = np.where(t < 0, h_top, h_bot)
    st = np.sin(t)
    y = y0 + (yn - y0) * (x + c) / (xn + c) + h * np.sign(st) * np.abs(st) ** (2.0 / p)
    # the breast meets the chest wall with a little flare: extend beyond x = -c
    pts = np.stack([x, y], 1)
    ext_top = np.array([[-c - 0.08 * W, y[0] - 0.01 * H]])
    ext_bot = np.array([[-c - 0.08 * W, y[-1] + 0.01 * H]])
    pts = np.concatenate([ext_top, pts, ext_bot])
    origin = (-c - 0.25 * W, y0)
    return pts, origin, (xn, yn)


def _outline_mlo(rng, W, H):
    xn = rng.uniform(0.60, 0.80) * W
    yn = rng.uniform(0.50, 0.62) * H
    x_ax = rng.uniform(0.38, 0.55) * W
    y_f = rng.uniform(0.86, 1.0) * H
    n = np.array([xn, yn])
    top = np.array([x_ax, 0.0])
    fold = np.array([0.0, y_f])
    d_up = top - n
    up_normal = np.array([d_up[1], -d_up[0]]) / np.linalg.norm(d_up)  # points up-right, outward
    upper = n + 0.5 * d_up + rng.uniform(0.02, 0.06) * W * up_normal
    d_lo = fold - n
    lo_normal = np.array([-d_lo[1], d_lo[0]]) / np.linalg.norm(d_lo)  # points down-right, outward
    if lo_normal[1] < 0:
        lo_normal = -lo_normal
    lower = n + 0.45 * d_lo + rng.uniform(0.09, 0.15) * W * lo_normal
    beyond_top = top + 0.6 * d_up / np.linalg.norm(d_up) * H * 0.5
    far_top = np.array([-0.2 * W, -1.1 * H])
    beyond_fold = np.array([-0.12 * W, y_f + 0.06 * H])
    far_bot = np.array([-0.3 * W, y_f + 0.5 * H])
    ctrl = np.array([far_top, beyond_top, top, upper, n, lower, fold, beyond_fold, far_bot])
    seg = np.linalg.norm(np.diff(ctrl, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    spl = CubicSpline(s, ctrl, bc_type="natural")
    pts = spl(np.linspace(0, s[-1], 6001))
    origin = (-0.45 * W, rng.uniform(0.40, 0.46) * H)
    return pts, origin, (xn, yn)


def _perturb_outline(rng, pts, nip, nipple_height, nipple_width):
    """Skin wiggles and the nipple bump, displacing the dense outline along its normal."""
    d = np.diff(pts, axis=0)
    seg = np.hypot(d[:, 0], d[:, 1])
    s = np.concatenate([[0], np.cumsum(seg)])
    tang = np.gradient(pts, s, axis=0)
    tang /= np.hypot(tang[:, 0], tang[:, 1])[:, None] + 1e-12
    normal = np.stack([tang[:, 1], -tang[:, 0]], 1)  # right of the direction of travel
    # orient the normal outward: at the nipple it must point to +x
    k = int(np.argmin(np.hypot(pts[:, 0] - nip[0], pts[:, 1] - nip[1])))
    if normal[k, 0] < 0:
        normal = -normal
    # smooth wiggles: a sum of a few sinusoids of arc length (periods 30-120 mm)
    wig = np.zeros_like(s)
    for _ in range(5):
        period = rng.uniform(30, 120)
        wig += rng.uniform(0.05, 0.3) * np.sin(2 * math.pi * s / period + rng.uniform(0, 2 * math.pi))
    disp = wig
    sn = s[k]
    bump = nipple_height * np.exp(-0.5 * ((s - sn) / (nipple_width / 2.6)) ** 4)
    disp = disp + bump
    return pts + normal * disp[:, None], pts[k] + normal[k] * nipple_height


def _polar_table(pts, origin, n=4096):
    ox, oy = origin
    phi = np.arctan2(pts[:, 1] - oy, pts[:, 0] - ox)
    r = np.hypot(pts[:, 0] - ox, pts[:, 1] - oy)
    if np.any(np.diff(phi) <= 0):
        # not strictly star-shaped somewhere (never expected): keep the outer envelope
        order = np.argsort(phi)
        phi, r = phi[order], r[order]
        keep = np.concatenate([[True], np.diff(phi) > 1e-9])
        phi, r = phi[keep], r[keep]
    table = np.linspace(phi[0], phi[-1], n)
    rt = np.interp(table, phi, r)
    return table, rt


def draw_breast(
    rng: np.random.Generator,
    view: str,
    shape: tuple[int, int],
    pixel_spacing: float,
    *,
    density: float | None = None,
    beta: float | None = None,
    thickness: float | None = None,
) -> BreastModel:
    """Draw one breast (left orientation) for an image of ``shape`` at ``pixel_spacing`` mm."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    rows, cols = shape
    ps = float(pixel_spacing)
    H, W = rows * ps, cols * ps
    if view == "CC":
        pts, origin, nip = _outline_cc(rng, W, H)
    else:
        pts, origin, nip = _outline_mlo(rng, W, H)
    scale = min(W, H) / 180.0  # nipple scales a little with the breast
    nh = rng.uniform(1.5, 5.0) * min(1.0, 0.5 + 0.5 * scale)
    nw = rng.uniform(9.0, 14.0) * min(1.0, 0.5 + 0.5 * scale)
    pts, tip = _perturb_outline(rng, pts, nip, nh, nw)
    phi_t, r_t = _polar_table(pts, origin)

    dens = float(rng.uniform(0.0, 1.0)) if density is None else float(density)
    b = float(rng.uniform(2.5, 3.5)) if beta is None else float(beta)
    thick = float(rng.uniform(38.0, 68.0)) if thickness is None else float(thickness)
    mu_fat = rng.uniform(0.28, 0.34)
    mu_gland = mu_fat + rng.uniform(0.36, 0.46)
    mu_skin = mu_fat + 0.5 * (mu_gland - mu_fat)
    # nipple axis: from the tip back towards the chest wall (MLO: towards the axilla)
    if view == "CC":
        target = (0.0, origin[1] + rng.uniform(-0.05, 0.05) * H)
    else:
        target = (0.0, rng.uniform(0.22, 0.38) * H)
    axis = math.atan2(target[1] - tip[1], target[0] - tip[0])

    pect = None
    if view == "MLO":
        # where the outline crosses the top edge (first crossing from the axilla side)
        cross = np.nonzero((pts[:-1, 1] < 0) & (pts[1:, 1] >= 0))[0]
        top_x = float(pts[cross[0], 0]) if len(cross) else 0.4 * W
        xp = rng.uniform(0.5, 0.8) * top_x
        yp = rng.uniform(0.3, 0.6) * H
        q = rng.uniform(0.9, 1.5)
        pect = (float(xp), float(yp), float(q))

    bm = BreastModel(
        view=view,
        shape=(int(rows), int(cols)),
        pixel_spacing=ps,
        thickness=thick,
        skin=float(rng.uniform(0.8, 1.6)),
        eta=float(rng.uniform(0.15, 0.4)),
        density=dens,
        beta=b,
        mu_fat=float(mu_fat),
        mu_gland=float(mu_gland),
        mu_skin=float(mu_skin),
        mu_muscle=float(rng.uniform(0.30, 0.42)),
        background=float(rng.uniform(0.001, 0.005)),
        noise_electronic=0.0025,
        noise_quantum=4.0e-5,
        origin=(float(origin[0]), float(origin[1])),
        phi_table=phi_t,
        r_table=r_t,
        outline=pts,
        nipple=(float(tip[0]), float(tip[1])),
        nipple_axis=float(axis),
        gland_halfangle=float(rng.uniform(0.55, 0.95)),
        gland_offset=float(rng.uniform(-0.2, 0.2)),
        subcutaneous=float(rng.uniform(4.0, 11.0) * (1.0 - 0.4 * dens)),
        retromammary=float(rng.uniform(3.0, 12.0)),
        lig_scale=float(rng.uniform(4.0, 8.0)),
        lig_strength=float(rng.uniform(0.008, 0.018)),
        duct_strength=float(rng.uniform(0.03, 0.07)),
        pectoral=pect,
        coarse_factor=max(1, int(round(0.45 / ps))),
        lowfreq_seed=int(rng.integers(0, 2**31)),
        enhance_gain=float(rng.uniform(0.075, 0.15)),
    )
    bm.vessels = _draw_vessels(rng, bm)
    if view == "MLO" and rng.random() < 0.6:
        bm.lymph_node = _draw_lymph_node(rng, bm)
    return bm


def _draw_vessels(rng, bm: BreastModel) -> list[Vessel]:
    H, W = bm.size_mm
    out = []
    n = int(rng.integers(2, 5))
    xn, yn = bm.nipple
    for _ in range(n):
        # enter at the chest wall inside the breast, wander towards the nipple region
        for _attempt in range(20):
            y = rng.uniform(0.1, 0.9) * H
            if signed_distance(bm, np.array([2.0]), np.array([y]))[0] > 8.0:
                break
        else:
            continue
        aim = (xn - rng.uniform(10, 40), yn + rng.uniform(-0.3, 0.3) * H)
        heading = math.atan2(aim[1] - y, aim[0] - 0.0)
        length = rng.uniform(0.5, 1.0) * xn
        step = 1.0
        pts = [(0.0, y)]
        x = 0.0
        turn = 0.0
        for _ in range(int(length / step)):
            turn = 0.9 * turn + rng.normal(0, 0.03)
            heading += turn
            # a gentle pull back towards the aim keeps the vessel in the breast
            want = math.atan2(aim[1] - y, aim[0] - x)
            heading += 0.05 * math.atan2(math.sin(want - heading), math.cos(want - heading))
            x += step * math.cos(heading)
            y += step * math.sin(heading)
            pts.append((x, y))
        out.append(
            Vessel(
                points=np.array(pts),
                width=float(rng.uniform(1.0, 2.6)),
                contrast=float(rng.uniform(0.03, 0.06)),
                depth=float(rng.uniform(0.15, 0.85)),
            )
        )
    return out


def _draw_lymph_node(rng, bm: BreastModel):
    H, W = bm.size_mm
    xp, yp, _ = bm.pectoral
    for _ in range(30):
        y = rng.uniform(0.06, 0.3) * H
        # just in front of the muscle edge
        x_edge = xp * max(0.0, 1.0 - y / yp) if y < yp else 0.0
        x = x_edge + rng.uniform(4.0, 20.0)
        a = rng.uniform(4.0, 8.0)
        b = a * rng.uniform(0.55, 0.8)
        if signed_distance(bm, np.array([x]), np.array([y]))[0] > a + 3.0:
            return (float(x), float(y), float(a), float(b), float(rng.uniform(0, math.pi)))
    return None


# ---------------------------------------------------------------------------------------------
# geometry fields


def _skin_points(bm: BreastModel) -> np.ndarray:
    """The outline resampled every ~0.2 mm, without the parts behind the chest wall."""
    pts = bm.outline
    d = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0], np.cumsum(d)])
    t = np.arange(0, s[-1], 0.2)
    p = np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], 1)
    H, W = bm.size_mm
    keep = (p[:, 0] >= -2.0) & (p[:, 1] >= -40.0) & (p[:, 1] <= H + 40.0)
    return p[keep]


def signed_distance(bm: BreastModel, x, y, cap: float = 80.0) -> np.ndarray:
    """Signed distance (mm) to the skin, positive inside the breast, capped at ``cap``."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x, y = np.broadcast_arrays(x, y)
    shape = x.shape
    if bm._tree is None:
        pts = _skin_points(bm)
        bm._tree = (cKDTree(pts, leafsize=64), pts)  # deep leaves: ~1.7x faster queries along a curve
    tree, pts = bm._tree
    q = np.stack([x.ravel(), y.ravel()], 1)
    dist, idx = tree.query(q, distance_upper_bound=cap, workers=-1)
    found = idx < len(pts)
    dist = np.where(found, dist, cap)
    if found.any():
        qi = q[found]
        i = idx[found]
        best = dist[found]
        for j0, j1 in ((i - 1, i), (i, i + 1)):
            ok = (j0 >= 0) & (j1 < len(pts))
            a = pts[np.clip(j0, 0, len(pts) - 1)]
            b = pts[np.clip(j1, 0, len(pts) - 1)]
            ab = b - a
            t = np.einsum("ij,ij->i", qi - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
            t = np.clip(t, 0, 1)
            proj = a + ab * t[:, None]
            dd = np.hypot(qi[:, 0] - proj[:, 0], qi[:, 1] - proj[:, 1])
            best = np.where(ok, np.minimum(best, dd), best)
        dist[found] = best
    ox, oy = bm.origin
    phi = np.arctan2(q[:, 1] - oy, q[:, 0] - ox)
    rho = np.hypot(q[:, 0] - ox, q[:, 1] - oy)
    inside = rho < np.interp(phi, bm.phi_table, bm.r_table)
    return np.where(inside, dist, -dist).astype(F32).reshape(shape)


#: Where the skin distance changes the pixels (mm): everything that reads it saturates deeper than this
#: (the rounded edge ``R`` <= 34 mm, the subcutaneous fat <= 23 mm, lesion placement at extent + 3
#: <= 33 mm); outside the breast only its sign counts.
EXACT_DEPTH_MM = 40.0


def signed_distance_grid(bm: BreastModel, x: np.ndarray, y: np.ndarray, cap: float = 80.0) -> np.ndarray:
    """:func:`signed_distance` on the regular grid ``x`` (1, cols) by ``y`` (rows, 1) (equal steps, mm),
    the same pixels in far less time.

    The k-d tree query is slow deep inside the breast, where many skin points are almost equally far,
    and there nothing depends on the exact distance. So a Euclidean distance transform of the
    rasterised skin points first gives every grid point the distance to a skin point near its nearest
    one (at most a grid diagonal more than the true distance); the exact query of
    :func:`signed_distance` then runs only where the distance is read: inside the breast up to
    :data:`EXACT_DEPTH_MM` deep, and in a band of three grid steps outside it (the bilinear
    upsampling of the coarse fields reads those); elsewhere the transform's distance stands, beyond
    anything that saturates, with the exact sign."""
    xs, ys = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    pts = _skin_points(bm)
    if len(xs) < 2 or len(ys) < 2 or len(pts) == 0:
        return signed_distance(bm, x, y, cap)
    step = float(xs[1] - xs[0])
    # the raster: the grid, extended to the skin points that lie within the cap of it
    near = ((pts[:, 0] > xs[0] - cap) & (pts[:, 0] < xs[-1] + cap) & (pts[:, 1] > ys[0] - cap)
            & (pts[:, 1] < ys[-1] + cap))
    if not near.any():
        return signed_distance(bm, x, y, cap)
    p = pts[near]
    ox = int(math.ceil(max(0.0, xs[0] - p[:, 0].min()) / step)) + 1
    oy = int(math.ceil(max(0.0, ys[0] - p[:, 1].min()) / step)) + 1
    nx = ox + len(xs) + int(math.ceil(max(0.0, p[:, 0].max() - xs[-1]) / step)) + 1
    ny = oy + len(ys) + int(math.ceil(max(0.0, p[:, 1].max() - ys[-1]) / step)) + 1
    x0, y0 = xs[0] - ox * step, ys[0] - oy * step
    ix = np.clip(np.rint((p[:, 0] - x0) / step).astype(np.int64), 0, nx - 1)
    iy = np.clip(np.rint((p[:, 1] - y0) / step).astype(np.int64), 0, ny - 1)
    owner = np.full((ny, nx), -1, np.int64)
    owner[iy, ix] = np.arange(len(p))
    ii, jj = ndimage.distance_transform_edt(owner < 0, return_distances=False, return_indices=True)
    nearest = owner[ii[oy:oy + len(ys), ox:ox + len(xs)], jj[oy:oy + len(ys), ox:ox + len(xs)]]
    gx, gy = np.meshgrid(xs, ys)
    approx = np.minimum(np.hypot(gx - p[nearest, 0], gy - p[nearest, 1]), cap)
    ox_, oy_ = bm.origin
    inside = np.hypot(gx - ox_, gy - oy_) < np.interp(np.arctan2(gy - oy_, gx - ox_), bm.phi_table, bm.r_table)
    out = np.where(inside, approx, -approx)
    band = np.where(inside, approx < EXACT_DEPTH_MM + 2 * step, approx < 3 * step + 2 * step)
    if band.any():
        out[band] = signed_distance(bm, gx[band], gy[band], cap)
    return out.astype(F32)


def pectoral_distance(bm: BreastModel, x, y) -> np.ndarray | None:
    """Approximate signed distance (mm) to the pectoral edge, positive inside the muscle."""
    if bm.pectoral is None:
        return None
    xp, yp, q = bm.pectoral
    x = np.maximum(np.asarray(x, F32), F32(1e-3))
    y = np.maximum(np.asarray(y, F32), F32(1e-3))
    ux = x / F32(xp)
    uy = y / F32(yp)
    F = ux ** F32(q) + uy ** F32(q)
    gx = F32(q) * ux ** F32(q - 1) / F32(xp)
    gy = F32(q) * uy ** F32(q - 1) / F32(yp)
    g = np.sqrt(gx * gx + gy * gy) + F32(1e-6)
    return ((F32(1.0) - F) / g).astype(F32, copy=False)


def _grid(shape, ps, factor):
    rows, cols = shape
    cr, cc = -(-rows // factor), -(-cols // factor)
    step = ps * factor
    y = ((np.arange(cr, dtype=F32) + F32(0.5)) * F32(step))[:, None]
    x = ((np.arange(cc, dtype=F32) + F32(0.5)) * F32(step))[None, :]
    return x, y


@dataclass
class CoarseFields:
    factor: int
    x: np.ndarray  # (1, cc) mm
    y: np.ndarray  # (cr, 1) mm
    sd: np.ndarray  # signed skin distance, mm
    pect: np.ndarray | None  # signed pectoral distance, mm
    envelope: np.ndarray  # fibroglandular envelope 0..1


def coarse_fields(bm: BreastModel) -> CoarseFields:
    k = bm.coarse_factor
    x, y = _grid(bm.shape, bm.pixel_spacing, k)
    xx = np.broadcast_to(x, (y.shape[0], x.shape[1]))
    yy = np.broadcast_to(y, (y.shape[0], x.shape[1]))
    sd = signed_distance_grid(bm, x, y)
    pect = pectoral_distance(bm, xx, yy)
    env = _envelope(bm, xx, yy, sd, pect, k)
    return CoarseFields(k, x, y, sd, pect, env)


def _envelope(bm, xx, yy, sd, pect, k):
    """Fibroglandular envelope: a cone behind the nipple, fat under the skin and at the wall."""
    xn, yn = bm.nipple
    dx = xx - F32(xn)
    dy = yy - F32(yn)
    s = np.hypot(dx, dy)
    ang = np.arctan2(dy, dx) - F32(bm.nipple_axis + bm.gland_offset)
    ang = np.arctan2(np.sin(ang), np.cos(ang))
    cone = np.exp(-np.abs(ang / F32(bm.gland_halfangle)) ** 3)
    depth = max(xn, 1.0)
    near = smoothstep(s, 0.06 * depth, 0.3 * depth)  # retro-areolar: ducts more than gland
    env = cone * (F32(0.35) + F32(0.65) * near)
    env *= smoothstep(sd, bm.subcutaneous, bm.subcutaneous + 12.0)
    env *= smoothstep(xx, bm.retromammary * 0.3, bm.retromammary + 10.0)
    if pect is not None:
        env *= F32(1.0) - F32(0.85) * smoothstep(pect, -bm.retromammary - 6.0, 0.0)
    # low-frequency irregularity of the glandular region
    lrng = np.random.default_rng(bm.lowfreq_seed)
    lf = power_law_noise(lrng, sd.shape, bm.pixel_spacing * k, 4.0, f_low=1.0 / 60.0)
    env *= np.clip(F32(1.0) + F32(0.45) * lf, 0.0, 1.7)
    return np.clip(env, 0.0, 1.0).astype(F32, copy=False)


@dataclass
class FullFields:
    sd: np.ndarray  # signed skin distance (mm), full resolution
    envelope: np.ndarray
    pect_term: np.ndarray | None  # attenuation added by the pectoral muscle
    breast_mask: np.ndarray  # sd > 0
    pectoral_mask: np.ndarray | None


def full_fields(bm: BreastModel, cf: CoarseFields, rng: np.random.Generator) -> FullFields:
    shape, k = bm.shape, cf.factor
    sd = upsample(cf.sd, shape, k)
    env = upsample(cf.envelope, shape, k)
    pect_term = pmask = None
    if cf.pect is not None:
        pd = upsample(cf.pect, shape, k)
        pmask = pd > 0
        m = smoothstep(pd, -0.5, 0.7)
        m *= F32(0.6)
        m += F32(0.4) * smoothstep(pd, 0.0, 30.0)
        # muscle fibres run along the edge: a 1D texture across them plus a faint 2D one
        xp, yp, _ = bm.pectoral
        nx, ny = 1.0 / xp, 1.0 / yp
        nrm = math.hypot(nx, ny)
        nx, ny = nx / nrm, ny / nrm
        ps = bm.pixel_spacing
        H, W = bm.size_mm
        u = (np.arange(shape[1], dtype=F32) + F32(0.5))[None, :] * F32(ps * nx) + (
            np.arange(shape[0], dtype=F32) + F32(0.5)
        )[:, None] * F32(ps * ny)
        n1 = int((W + H) / 0.25) + 2
        fib = ndimage.gaussian_filter1d(rng.standard_normal(n1), 4.0).astype(F32)
        fib /= F32(fib.std() + 1e-6)
        fibres = np.interp(u.ravel() / 0.25, np.arange(n1), fib).astype(F32).reshape(shape)
        pect_term = m * F32(bm.mu_muscle) * (F32(1.0) + F32(0.06) * fibres)
        pect_term *= pmask | (pd > -1.0)
        del fibres, u, m, pd
    return FullFields(sd=sd, envelope=env, pect_term=pect_term, breast_mask=sd > 0, pectoral_mask=pmask)


# ---------------------------------------------------------------------------------------------
# tissue texture


def _streaks(bm: BreastModel, rng, shape) -> np.ndarray:
    """Ducts and trabeculae converging on the nipple: noise sampled in nipple polar coordinates."""
    ps = bm.pixel_spacing
    xn, yn = bm.nipple
    H, W = bm.size_mm
    smax = math.hypot(max(xn, W - xn), max(yn, H - yn)) + 1.0
    n_psi = 900
    ds = 2.0
    n_s = int(smax / ds) + 2
    g = rng.standard_normal((n_psi, n_s)).astype(F32)
    g = ndimage.gaussian_filter(g, (3.0, 6.0), mode=("wrap", "nearest"))
    g /= F32(g.std() + 1e-6)
    x = (np.arange(shape[1], dtype=F32) + F32(0.5)) * F32(ps) - F32(xn)
    y = (np.arange(shape[0], dtype=F32) + F32(0.5)) * F32(ps) - F32(yn)
    dx = np.broadcast_to(x[None, :], shape)
    dy = np.broadcast_to(y[:, None], shape)
    psi = np.arctan2(dy, dx)
    psi += F32(math.pi)
    psi *= F32(n_psi / (2 * math.pi))
    s = np.hypot(dx, dy)
    s *= F32(1.0 / ds)
    out = ndimage.map_coordinates(g, [psi, s], order=1, mode="grid-wrap", output=F32)
    del psi
    np.maximum(out, 0, out=out)
    out *= out
    out *= F32(1.0 / 3.0)
    # strongest in the retro-areolar region, fading towards the chest wall
    s *= F32(ds)
    near = smoothstep(s, 5.0, 25.0)
    s *= F32(-1.0 / max(0.45 * xn, 20.0))
    np.exp(s, out=s)
    out *= s
    out *= near
    return out


def _render_vessels(bm: BreastModel, vessels: list[Vessel], cshape, k) -> np.ndarray:
    step = bm.pixel_spacing * k
    canvas = np.zeros(cshape, F32)
    for v in vessels:
        sigma = max(v.width / 2.6 / step, 0.6)
        layer = np.zeros(cshape, F32)
        pts = v.points / step - 0.5
        n = len(pts)
        taper = np.linspace(1.0, 0.45, n)
        for i in range(n - 1):
            (x0, y0), (x1, y1) = pts[i], pts[i + 1]
            m = int(max(abs(x1 - x0), abs(y1 - y0)) * 2) + 1
            xs = np.linspace(x0, x1, m)
            ys = np.linspace(y0, y1, m)
            ix = np.round(xs).astype(int)
            iy = np.round(ys).astype(int)
            ok = (ix >= 0) & (iy >= 0) & (ix < cshape[1]) & (iy < cshape[0])
            layer[iy[ok], ix[ok]] = np.maximum(layer[iy[ok], ix[ok]], taper[i])
        layer = ndimage.gaussian_filter(layer, sigma)
        layer *= F32(math.sqrt(2 * math.pi) * sigma * v.contrast)
        canvas += layer
    return canvas


def _lymph_node(bm: BreastModel, shape) -> tuple[slice, slice, np.ndarray] | None:
    if bm.lymph_node is None:
        return None
    x, y, a, b, ang = bm.lymph_node
    ps = bm.pixel_spacing
    r = a + 2.0
    y0, y1 = max(0, int((y - r) / ps)), min(shape[0], int((y + r) / ps) + 1)
    x0, x1 = max(0, int((x - r) / ps)), min(shape[1], int((x + r) / ps) + 1)
    if y1 <= y0 or x1 <= x0:
        return None
    yy = (np.arange(y0, y1, dtype=F32)[:, None] + F32(0.5)) * F32(ps) - F32(y)
    xx = (np.arange(x0, x1, dtype=F32)[None, :] + F32(0.5)) * F32(ps) - F32(x)
    c, s = math.cos(ang), math.sin(ang)
    u = (xx * c + yy * s) / a
    v = (-xx * s + yy * c) / b
    rr = u * u + v * v
    node = np.sqrt(np.clip(1 - rr, 0, 1))
    # fatty hilum: a lucent notch on one side
    hr = ((u - 0.55) ** 2) / 0.25 + (v ** 2) / 0.12
    node *= F32(1.0) - F32(0.8) * np.sqrt(np.clip(1 - hr, 0, 1))
    node = ndimage.gaussian_filter(node.astype(F32), 0.25 / ps)
    return slice(y0, y1), slice(x0, x1), node * F32(0.28)


def tissue_texture(
    bm: BreastModel,
    ff: FullFields,
    rng: np.random.Generator,
    *,
    vessels: list[Vessel] | None = None,
    lymph_node: bool = True,
    nipple: bool = True,
    strength: float = 1.0,
) -> np.ndarray:
    """Linear attenuation map (display units) of the tissue inside the breast, left orientation.

    ``strength`` scales the glandular/fat contrast (DBT layers use one full-strength layer per
    slab); the returned field is float32, full resolution.
    """
    shape = bm.shape
    ps = bm.pixel_spacing
    pl = power_law_filter(shape, ps, bm.beta)
    smooth, tex, web = filtered_fields(
        rng,
        shape,
        [
            pl * low_pass_filter(shape, ps, GLAND_EDGE_CUTOFF),
            pl,
            band_pass_filter(shape, ps, 1.0 / bm.lig_scale, octaves=0.45),
        ],
    )
    del pl
    # glandular fraction: soft threshold of the (band-limited) power-law field against the
    # envelope; the full-band field is added linearly below so the 1/f^beta spectrum stays
    theta = 1.3 - 1.15 * bm.density
    z = smooth
    z *= F32(GLAND_FIELD_WEIGHT)
    z += F32(3.0) * (ff.envelope - F32(theta))
    z *= F32(-1.0 / 0.8)
    np.exp(z, out=z)
    z += F32(1.0)
    np.reciprocal(z, out=z)  # sigmoid
    g = z
    g *= smoothstep(ff.envelope, 0.0, 0.35)
    g *= smoothstep(ff.sd, 0.5 * bm.subcutaneous, bm.subcutaneous + 2.0)
    if ff.pect_term is not None:
        g *= F32(1.0) - F32(0.8) * (ff.pect_term > 0)
    # texture inside the gland: the same field, linearly (keeps the 1/f^beta spectrum)
    lin = g * F32(GLAND_TEXTURE[0])
    lin += F32(GLAND_TEXTURE[1])
    tex *= lin
    del lin
    tex += g
    # fat-lobule septa / Cooper's ligaments: thin bright lines at the web's zero crossings
    web *= F32(1.0 / 0.18)
    np.square(web, out=web)
    np.negative(web, out=web)
    np.exp(web, out=web)
    web *= F32(1.0) - g
    web *= F32(bm.lig_strength)
    tex *= F32((bm.mu_gland - bm.mu_fat) * strength)
    tex += F32(bm.mu_fat)
    tex += web
    del web
    st = _streaks(bm, rng, shape)
    st *= F32(bm.duct_strength * strength)
    tex += st
    del st
    vs = bm.vessels if vessels is None else vessels
    if vs:
        k = bm.coarse_factor
        cshape = (-(-shape[0] // k), -(-shape[1] // k))
        tex += upsample(_render_vessels(bm, vs, cshape, k), shape, k)
    if nipple:
        xn, yn = bm.nipple
        r = 8.0
        y0, y1 = max(0, int((yn - r) / ps)), min(shape[0], int((yn + r) / ps) + 1)
        x0, x1 = max(0, int((xn - 2 * r) / ps)), min(shape[1], int((xn + 1) / ps) + 1)
        if y1 > y0 and x1 > x0:
            yy = (np.arange(y0, y1, dtype=F32)[:, None] + F32(0.5)) * F32(ps) - F32(yn)
            xx = (np.arange(x0, x1, dtype=F32)[None, :] + F32(0.5)) * F32(ps) - F32(xn)
            tex[y0:y1, x0:x1] += F32(0.07) * np.exp(-(xx * xx + yy * yy) / F32(2 * 3.5**2))
    if lymph_node:
        ln = _lymph_node(bm, shape)
        if ln is not None:
            sy, sx, node = ln
            tex[sy, sx] += node
    return tex


# ---------------------------------------------------------------------------------------------
# image formation


def enhance(bm: BreastModel, tex: np.ndarray) -> np.ndarray:
    """For-presentation processing: local contrast enhancement (unsharp mask) of the tissue map.

    Done on the tissue map rather than the final image, so the skin edge gets no halo.
    """
    k = bm.coarse_factor
    low = block_mean(tex, k)
    low = ndimage.gaussian_filter(low, ENHANCE_SIGMA / (bm.pixel_spacing * k), mode="nearest")
    low = upsample(low, tex.shape, k)
    g = F32(bm.enhance_gain)
    tex *= F32(1.0) + g
    low *= g
    tex -= low
    return tex


def attenuation_to_display(bm: BreastModel, ff: FullFields, tex: np.ndarray) -> np.ndarray:
    """Project the tissue map through the rounded breast edge; returns display values (float32).

    ``tex`` is consumed (modified in place).
    """
    R = F32(bm.edge_radius)
    s = F32(min(bm.skin, 0.4 * bm.edge_radius))
    d = np.clip(ff.sd, 0.0, R)
    rd = R - d  # R - d
    rd2 = rd * rd
    T = R * R - rd2
    np.maximum(T, 0, out=T)
    np.sqrt(T, out=T)
    T *= F32(2.0)
    Ti = (R - s) * (R - s) - rd2
    del rd2, rd, d
    np.maximum(Ti, 0, out=Ti)
    np.sqrt(Ti, out=Ti)
    Ti *= F32(2.0)
    S = T - Ti
    # A = (mu_skin S + tex Ti) / 2R, then partial peripheral equalisation / (T/2R)**eta
    tex *= Ti
    del Ti
    S *= F32(bm.mu_skin)
    tex += S
    del S
    tex *= F32(1.0) / (F32(2.0) * R)
    T *= F32(1.0) / (F32(2.0) * R)
    np.clip(T, 1e-4, 1.0, out=T)
    np.power(T, F32(bm.eta), out=T)
    tex /= T
    del T
    if ff.pect_term is not None:
        tex += ff.pect_term
    tex += F32(bm.background)
    return tex


def add_detector_noise(bm: BreastModel, disp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    scale = 0.1 / bm.pixel_spacing
    var = np.maximum(disp, 0) * F32(bm.noise_quantum * scale * scale)
    var += F32((bm.noise_electronic * scale) ** 2)
    np.sqrt(var, out=var)
    var *= rng.standard_normal(disp.shape, dtype=F32)
    disp += var
    return disp


def quantise(disp: np.ndarray, bits_stored: int) -> np.ndarray:
    """Display values to stored values through the presentation curve ``(P / P_MAX) ** GAMMA``."""
    top = (1 << bits_stored) - 1
    disp *= F32(1.0 / P_MAX)
    np.clip(disp, 0.0, 1.0, out=disp)
    np.power(disp, F32(GAMMA), out=disp)
    disp *= F32(top)
    np.rint(disp, out=disp)
    return disp.astype(np.uint16)
