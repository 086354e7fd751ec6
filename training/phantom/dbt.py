"""Digital breast tomosynthesis (DBT) phantom volumes, generated one slice at a time.

Model: the compressed breast (thickness = ``n_slices`` mm, slices 1 mm apart) holds a small
number of independent tissue layers (8-12 slabs), each a full 2D parenchyma map of its own
(power-law texture, ducts, fat septa, its share of the vessels). A reconstructed slice is the
weighted mean of all layers: the layer whose slab contains the slice is sharp, the others are
blurred in-plane in proportion to their distance from the slice (more along the rows, the tube's
sweep direction, than along the columns) and fade with distance. The layers are kept as real
FFT spectra, so a slice costs one weighted sum of spectra and one inverse FFT.

Lesions sit at a depth: sharp in the slices around it, blurred and fading outside (a mass spans
about its diameter, calcification specks are sharp in one or two slices, a distortion in a few).
The outline, skin, pectoral muscle and detector noise are those of the 2D simulator; the noise of
frame ``k`` comes from its own seed, so ``frame(k)`` does not depend on the order of calls.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import scipy.fft

from . import anatomy
from .lesions import render_lesions
from .mammogram import (
    NOISE_STREAM,
    TEXTURE_STREAM,
    check_common,
    child,
    draw_scene,
    ground_truth,
    mirrored,
    seed_sequence,
    window_presets,
)
from .noise import F32

SLICE_SPACING = 1.0  # mm
BLUR_PER_MM = (0.4, 0.12)  # in-plane blur sigma (mm) per mm of defocus: rows (sweep), columns
LAYER_FADE = 3.5  # mm: e-folding distance of an out-of-focus layer's weight
IN_FOCUS_GAIN = 2.5  # the sharp layer's weight relative to a neighbour at zero defocus


class PhantomVolume:
    """A simulated DBT volume: ``simulate_dbt(seed, ...)`` is this constructor.

    Constructing it draws the anatomy, the lesions and the tissue layers; slices are computed on
    demand (``frame(k)``, ``frames()``). ``lesions`` carry the in-plane mask/box and
    ``slice_start``/``slice_end`` (0-based, inclusive); slice ``k`` lies at depth
    ``k * slice_spacing`` mm from the detector side.
    """

    def __init__(
        self,
        seed,
        *,
        view: str = "CC",
        laterality: str = "L",
        shape: tuple[int, int] = (512, 416),
        n_slices: int = 40,
        pixel_spacing: float = 0.2,
        lesion_classes=(),
        bits_stored: int = 12,
        density: float | None = None,
        beta: float | None = None,
        lesion_contrast: float = 1.0,
        lesion_size: float = 1.0,
    ):
        shape, ps, bits, classes = check_common(view, laterality, shape, pixel_spacing, bits_stored, lesion_classes)
        n_slices = int(n_slices)
        if not (4 <= n_slices <= 400):
            raise ValueError(f"n_slices must be between 4 and 400, not {n_slices!r}")
        ss = seed_sequence(seed)
        self._ss = ss
        self.seed = None if isinstance(seed, np.random.SeedSequence) else int(seed)
        self.view = view
        self.laterality = laterality
        self.shape = shape
        self.n_slices = n_slices
        self.pixel_spacing = ps
        self.bits_stored = bits
        self.slice_spacing = SLICE_SPACING
        thickness = n_slices * SLICE_SPACING
        scene = draw_scene(ss, view, shape, ps, classes, density=density, beta=beta, thickness=thickness,
                           lesion_contrast=lesion_contrast, lesion_size=lesion_size)
        bm, ff = scene.breast, scene.fields
        self._bm = bm
        self.density = bm.density
        self.beta = bm.beta
        self.thickness_mm = thickness
        self._models = scene.lesions
        # tissue layers
        n_layers = int(np.clip(round(n_slices / 5), 4, 12))
        self._depths = (np.arange(n_layers) + 0.5) * thickness / n_layers
        self._half_slab = 0.5 * thickness / n_layers
        groups: list[list] = [[] for _ in range(n_layers)]
        for v in bm.vessels:
            groups[min(n_layers - 1, int(v.depth * n_layers))].append(v)
        node_layer = n_layers // 2 - 1 if n_layers > 2 else 0
        self._spectra = []
        for layer in range(n_layers):
            tex = anatomy.tissue_texture(
                bm,
                ff,
                np.random.default_rng(child(ss, TEXTURE_STREAM, layer)),
                vessels=groups[layer],
                lymph_node=layer == node_layer,
                nipple=layer == n_layers // 2,
            )
            self._spectra.append(scipy.fft.rfft2(tex).astype(np.complex64, copy=False))
            del tex
        ff.envelope = None  # only the layers needed it
        self._ff = ff
        rows, cols = shape
        self._fy2 = (np.fft.fftfreq(rows, d=ps) ** 2).astype(F32)
        self._fx2 = (np.fft.rfftfreq(cols, d=ps) ** 2).astype(F32)
        self.lesions, self.breast_mask, self.pectoral_mask = ground_truth(scene, laterality, slices=n_slices)
        self._windows = None

    # -----------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.n_slices

    def slice_position(self, k: int) -> float:
        """Position of slice ``k`` in mm along the stack normal, increasing 1 mm per slice."""
        return float(k) * self.slice_spacing

    def frame(self, k: int) -> np.ndarray:
        """Slice ``k`` (0-based) as uint16 (rows, cols); deterministic, independent of call order."""
        k = int(k)
        if not 0 <= k < self.n_slices:
            raise IndexError(f"slice {k} is outside 0..{self.n_slices - 1}")
        z = (k + 0.5) * self.slice_spacing
        acc = None
        wsum = 0.0
        c2 = -2.0 * math.pi**2
        for spec, zl in zip(self._spectra, self._depths):
            excess = max(0.0, abs(z - zl) - self._half_slab)
            w = math.exp(-excess / LAYER_FADE) * (IN_FOCUS_GAIN if excess == 0.0 else 1.0)
            if w < 0.02:
                continue
            wsum += w
            if excess == 0.0:
                term = spec * np.complex64(w)
            else:
                sy, sx = BLUR_PER_MM[0] * excess, BLUR_PER_MM[1] * excess
                gy = np.exp(self._fy2 * F32(c2 * sy * sy)).astype(F32)
                gx = np.exp(self._fx2 * F32(c2 * sx * sx)).astype(F32) * F32(w)
                term = spec * gy[:, None]
                term *= gx[None, :]
            if acc is None:
                acc = term
            else:
                acc += term
            del term
        tex = scipy.fft.irfft2(acc, s=self.shape).astype(F32, copy=False)
        del acc
        tex *= F32(1.0 / wsum)
        ps = self.pixel_spacing
        render_lesions(tex, self._models, z=z, blur=(BLUR_PER_MM[0] / ps, BLUR_PER_MM[1] / ps))
        anatomy.enhance(self._bm, tex)
        disp = anatomy.attenuation_to_display(self._bm, self._ff, tex)
        del tex
        rng = np.random.default_rng(child(self._ss, NOISE_STREAM, k))
        anatomy.add_detector_noise(self._bm, disp, rng)
        return mirrored(anatomy.quantise(disp, self.bits_stored), self.laterality == "R")

    def frames(self) -> Iterator[np.ndarray]:
        for k in range(self.n_slices):
            yield self.frame(k)

    def window_presets(self) -> list[tuple[float, float, str]]:
        """VOI presets measured on the central slice (cached)."""
        if self._windows is None:
            self._windows = window_presets(self.frame(self.n_slices // 2), self.breast_mask, self.bits_stored)
        return self._windows



# one signature for both names: simulating a volume is constructing one (slices come lazily)
simulate_dbt = PhantomVolume
