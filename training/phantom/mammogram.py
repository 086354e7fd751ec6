"""2D synthetic mammograms ("for presentation") with lesion ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import anatomy
from .lesions import (
    LESION_CLASSES,
    LesionModel,
    PhantomLesion,
    draw_lesions,
    public_lesion,
    render_lesions,
)

# children of the image's SeedSequence (kept stable so adding a lesion never changes the anatomy);
# a DBT volume uses the same numbering, its tissue layers drawing from the texture's child
ANATOMY_STREAM, TEXTURE_STREAM, LESION_STREAM, NOISE_STREAM = range(4)
# foreign objects (foreign.py) are drawn on the finished image from this child alone, so adding one
# changes nothing else
FOREIGN_OBJECT_STREAM = 4


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


def mirrored(arr: np.ndarray, flip: bool) -> np.ndarray:
    """``arr`` flipped left-right (contiguous) when ``flip``: right breasts mirror the left ones."""
    return np.ascontiguousarray(arr[:, ::-1]) if flip else arr


@dataclass
class Scene:
    """What a 2D image or a DBT volume is rendered from, in the left-breast orientation."""

    breast: anatomy.BreastModel
    fields: anatomy.FullFields
    lesions: list[LesionModel]


def draw_scene(ss, view, shape, ps, classes, *, density, beta, thickness=None, lesion_contrast: float = 1.0,
               lesion_size: float = 1.0) -> Scene:
    """Draw the breast, its tissue fields and one lesion model per class from ``ss``'s children.

    ``thickness`` (mm) fixes the compressed thickness and gives every lesion a depth inside it
    (DBT); ``None`` draws the thickness from the seed and leaves depth out (2D projection).
    ``lesion_contrast`` and ``lesion_size`` are the lesions' conspicuity scales
    (:mod:`training.phantom.lesions`); the breast does not depend on them.
    """
    rng_anatomy = np.random.default_rng(child(ss, ANATOMY_STREAM))
    bm = anatomy.draw_breast(rng_anatomy, view, shape, ps, density=density, beta=beta, thickness=thickness)
    cf = anatomy.coarse_fields(bm)
    ff = anatomy.full_fields(bm, cf, rng_anatomy)
    depth_range = None if thickness is None else (0.0, thickness)
    lesions = draw_lesions(
        np.random.default_rng(child(ss, LESION_STREAM)), bm, cf, classes, thickness_range=depth_range,
        contrast=lesion_contrast, size=lesion_size,
    )
    return Scene(bm, ff, lesions)


def ground_truth(
    scene: Scene, laterality: str, slices: int | None = None
) -> tuple[list[PhantomLesion], np.ndarray, np.ndarray | None]:
    """The lesion records and the breast/pectoral masks in the orientation of the output image.

    Lesion masks are clipped to the breast outside the pectoral muscle; ``slices`` (DBT) adds
    each lesion's slice range. Returns ``(lesions, breast_mask, pectoral_mask)``.
    """
    bm, ff = scene.breast, scene.fields
    allowed = ff.breast_mask.copy()
    if ff.pectoral_mask is not None:
        allowed &= ~ff.pectoral_mask
    flip = laterality == "R"
    records = [
        public_lesion(lm, bm.shape, allowed, bm.pixel_spacing, flip=flip, slices=slices) for lm in scene.lesions
    ]
    pectoral = None if ff.pectoral_mask is None else mirrored(ff.pectoral_mask, flip)
    return records, mirrored(ff.breast_mask, flip), pectoral


def window_presets(pixels: np.ndarray, mask: np.ndarray, bits_stored: int) -> list[tuple[float, float, str]]:
    """Two VOI windows from the breast's pixel values: ``STANDARD`` (whole breast) and ``HARDER``.
    Not "NORMAL" (a vendor's name for it): beside a model's "-> abnormal" it reads as a finding."""
    step = max(1, int(np.sqrt(pixels.size / 2.0e6)))
    v = pixels[::step, ::step][mask[::step, ::step]]
    if v.size < 16:
        v = pixels.ravel()
    lo, mid, hi = (float(x) for x in np.percentile(v, [0.3, 35.0, 99.9]))
    top = float((1 << bits_stored) - 1)
    hi = max(hi, lo + 16.0)
    mid = min(max(mid, lo), hi - 8.0)
    standard = (round((lo + hi) / 2.0), round(min(top, (hi - lo) * 1.05)), "STANDARD")
    harder = (round((mid + hi) / 2.0), round(hi - mid), "HARDER")
    return [standard, harder]


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
    foreign_objects: list = field(default_factory=list)  # foreign.ForeignObject records
    presets: list[tuple[float, float, str]] | None = None  # fixed VOI windows (kept from the twin)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape

    def window_presets(self) -> list[tuple[float, float, str]]:
        """The VOI windows: ``presets`` when set (an image with a foreign object keeps its twin's)."""
        if self.presets is not None:
            return list(self.presets)
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
    lesion_contrast: float = 1.0,
    lesion_size: float = 1.0,
) -> PhantomImage:
    """Simulate one 2D mammogram.

    Deterministic for ``seed`` (an int >= 0): the same arguments give byte-identical pixels.
    ``lesion_classes`` inserts one lesion per listed class; the anatomy and the detector noise
    do not depend on it, so ``img(lesions) - img()`` isolates the lesions. The laterality only
    mirrors the image: ``R`` is ``L`` flipped left-right (chest wall at the right edge).
    ``density`` (0 fatty .. 1 extremely dense) and ``beta`` (power-law exponent, 2.5-3.5) are
    drawn from the seed unless given, so a caller can keep them per patient.
    ``lesion_contrast`` and ``lesion_size`` scale the lesions' conspicuity (contrast: their change
    to the tissue map; size: every length), see :mod:`training.phantom.lesions`; the same seed at
    any of them gives the same anatomy and detector-noise draw.
    """
    shape, ps, bits, classes = check_common(view, laterality, shape, pixel_spacing, bits_stored, lesion_classes)
    ss = seed_sequence(seed)
    scene = draw_scene(ss, view, shape, ps, classes, density=density, beta=beta, lesion_contrast=lesion_contrast,
                       lesion_size=lesion_size)
    bm, ff = scene.breast, scene.fields
    tex = anatomy.tissue_texture(bm, ff, np.random.default_rng(child(ss, TEXTURE_STREAM)))
    render_lesions(tex, scene.lesions)
    anatomy.enhance(bm, tex)
    disp = anatomy.attenuation_to_display(bm, ff, tex)
    del tex
    anatomy.add_detector_noise(bm, disp, np.random.default_rng(child(ss, NOISE_STREAM)))
    pixels = anatomy.quantise(disp, bits)
    del disp
    records, breast, pect = ground_truth(scene, laterality)
    pixels = mirrored(pixels, laterality == "R")
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
