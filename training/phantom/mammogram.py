"""2D synthetic mammograms ("for presentation") with lesion ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import anatomy
from .lesions import LESION_CLASSES, PhantomLesion, draw_lesions, public_lesion, render_lesions

# children of the image's SeedSequence (kept stable so adding a lesion never changes the anatomy)
_ANATOMY, _TEXTURE, _LESIONS, _NOISE = range(4)


def seed_sequence(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return np.random.SeedSequence(int(seed))


def child(ss: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """The SeedSequence ``ss.spawn`` would give for ``key``, without spawn's hidden counter."""
    return np.random.SeedSequence(entropy=ss.entropy, spawn_key=tuple(ss.spawn_key) + tuple(key), pool_size=ss.pool_size)


def check_common(view, laterality, shape, pixel_spacing, bits_stored, lesion_classes):
    if view not in anatomy.VIEWS:
        raise ValueError(f"view must be CC or MLO, not {view!r}")
    if laterality not in anatomy.LATERALITIES:
        raise ValueError(f"laterality must be L or R, not {laterality!r}")
    if len(shape) != 2 or min(shape) < 64:
        raise ValueError(f"shape must be (rows, cols) of at least 64 pixels each, not {shape!r}")
    if not (0.01 <= float(pixel_spacing) <= 2.0):
        raise ValueError(f"pixel_spacing must be in mm between 0.01 and 2, not {pixel_spacing!r}")
    if int(bits_stored) not in range(8, 17):
        raise ValueError(f"bits_stored must be between 8 and 16, not {bits_stored!r}")
    for c in lesion_classes:
        if c not in LESION_CLASSES:
            raise ValueError(f"lesion class must be one of {', '.join(LESION_CLASSES)}, not {c!r}")
    return (int(shape[0]), int(shape[1])), float(pixel_spacing), int(bits_stored), tuple(lesion_classes)


def window_presets(pixels: np.ndarray, mask: np.ndarray, bits_stored: int) -> list[tuple[float, float, str]]:
    """Two VOI windows from the breast's pixel values: ``NORMAL`` (whole breast) and ``HARDER``."""
    step = max(1, int(np.sqrt(pixels.size / 2.0e6)))
    v = pixels[::step, ::step][mask[::step, ::step]]
    if v.size < 16:
        v = pixels.ravel()
    lo, mid, hi = (float(x) for x in np.percentile(v, [0.3, 35.0, 99.9]))
    top = float((1 << bits_stored) - 1)
    hi = max(hi, lo + 16.0)
    mid = min(max(mid, lo), hi - 8.0)
    normal = (round((lo + hi) / 2.0), round(min(top, (hi - lo) * 1.05)), "NORMAL")
    harder = (round((mid + hi) / 2.0), round(hi - mid), "HARDER")
    return [normal, harder]


@dataclass
class PhantomImage:
    """A simulated MG image: MONOCHROME2 for-presentation uint16 pixels plus ground truth."""

    pixels: np.ndarray
    laterality: str
    view: str
    pixel_spacing: float
    bits_stored: int
    breast_mask: np.ndarray
    lesions: list[PhantomLesion] = field(default_factory=list)
    pectoral_mask: np.ndarray | None = None
    seed: int | None = None
    density: float = 0.0
    beta: float = 0.0
    thickness_mm: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape

    def window_presets(self) -> list[tuple[float, float, str]]:
        return window_presets(self.pixels, self.breast_mask, self.bits_stored)


def simulate_mammogram(
    seed,
    *,
    view: str = "CC",
    laterality: str = "L",
    shape: tuple[int, int] = (1024, 832),
    pixel_spacing: float = 0.2,
    lesion_classes=(),
    bits_stored: int = 12,
    density: float | None = None,
    beta: float | None = None,
) -> PhantomImage:
    """Simulate one 2D mammogram.

    Deterministic for ``seed`` (an int >= 0): the same arguments give byte-identical pixels.
    ``lesion_classes`` inserts one lesion per listed class; the anatomy and the detector noise
    do not depend on it, so ``img(lesions) - img()`` isolates the lesions. The laterality only
    mirrors the image: ``R`` is ``L`` flipped left-right (chest wall at the right edge).
    ``density`` (0 fatty .. 1 extremely dense) and ``beta`` (power-law exponent, 2.5-3.5) are
    drawn from the seed unless given, so a caller can keep them per patient.
    """
    shape, ps, bits, classes = check_common(view, laterality, shape, pixel_spacing, bits_stored, lesion_classes)
    ss = seed_sequence(seed)
    rng_a = np.random.default_rng(child(ss, _ANATOMY))
    bm = anatomy.draw_breast(rng_a, view, shape, ps, density=density, beta=beta)
    cf = anatomy.coarse_fields(bm)
    ff = anatomy.full_fields(bm, cf, rng_a)
    lesions = draw_lesions(np.random.default_rng(child(ss, _LESIONS)), bm, cf, classes)
    tex = anatomy.tissue_texture(bm, ff, np.random.default_rng(child(ss, _TEXTURE)))
    render_lesions(tex, lesions)
    anatomy.enhance(bm, tex)
    disp = anatomy.attenuation_to_display(bm, ff, tex)
    del tex
    anatomy.add_detector_noise(bm, disp, np.random.default_rng(child(ss, _NOISE)))
    pixels = anatomy.quantise(disp, bits)
    del disp
    allowed = ff.breast_mask.copy()
    if ff.pectoral_mask is not None:
        allowed &= ~ff.pectoral_mask
    flip = laterality == "R"
    records = [public_lesion(lm, shape, allowed, ps, flip=flip) for lm in lesions]
    breast = ff.breast_mask
    pect = ff.pectoral_mask
    if flip:
        pixels = np.ascontiguousarray(pixels[:, ::-1])
        breast = np.ascontiguousarray(breast[:, ::-1])
        pect = None if pect is None else np.ascontiguousarray(pect[:, ::-1])
    return PhantomImage(
        pixels=pixels,
        laterality=laterality,
        view=view,
        pixel_spacing=ps,
        bits_stored=bits,
        breast_mask=breast,
        lesions=records,
        pectoral_mask=pect,
        seed=None if isinstance(seed, np.random.SeedSequence) else int(seed),
        density=bm.density,
        beta=bm.beta,
        thickness_mm=bm.thickness,
    )
