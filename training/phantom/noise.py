"""Random fields and small array helpers for the phantom simulator (numpy/scipy only).

Every field is float32 and built in the Fourier domain with real FFTs (``scipy.fft``), so a
full-field 4084 x 3328 image costs a few hundred milliseconds and about 4 bytes per pixel per
field. Frequencies are physical (cycles/mm), so textures look the same at any pixel spacing.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.fft

from inference.preprocess import resize_linear

F32 = np.float32


def freq_grid(shape: tuple[int, int], pixel_spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column frequencies (cycles/mm) of an ``rfft2`` spectrum, shaped for broadcasting."""
    rows, cols = shape
    fy = np.fft.fftfreq(rows, d=pixel_spacing).astype(F32)[:, None]
    fx = np.fft.rfftfreq(cols, d=pixel_spacing).astype(F32)[None, :]
    return fy, fx


def white_spectrum(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Complex white Gaussian noise in ``rfft2`` layout (complex64)."""
    rows, cols = shape
    spec = np.empty((rows, cols // 2 + 1), np.complex64)
    spec.real = rng.standard_normal(spec.shape, dtype=F32)
    spec.imag = rng.standard_normal(spec.shape, dtype=F32)
    return spec


def power_law_filter(shape, pixel_spacing, beta, f_low=0.04) -> np.ndarray:
    """Amplitude filter ``f**(-beta/2)`` (power ``1/f**beta``), flat below ``f_low`` cycles/mm."""
    fy, fx = freq_grid(shape, pixel_spacing)
    f2 = fy * fy + fx * fx
    np.maximum(f2, F32(f_low * f_low), out=f2)
    amp = np.power(f2, F32(-beta / 4.0), dtype=F32)
    amp[0, 0] = 0.0
    return amp


def band_pass_filter(shape, pixel_spacing, f_center, octaves=0.5) -> np.ndarray:
    """Log-Gaussian ring around ``f_center`` cycles/mm with a width of ``octaves`` (sigma)."""
    fy, fx = freq_grid(shape, pixel_spacing)
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = 1e-6
    lf = np.log2(f / F32(f_center))
    lf *= lf
    lf *= F32(-0.5 / (octaves * octaves))
    return np.exp(lf, dtype=F32)


def low_pass_filter(shape, pixel_spacing, f_cut) -> np.ndarray:
    """Gaussian low-pass ``exp(-(f / f_cut)**2)`` (f in cycles/mm)."""
    fy, fx = freq_grid(shape, pixel_spacing)
    f2 = fy * fy + fx * fx
    f2 *= F32(-1.0 / (f_cut * f_cut))
    return np.exp(f2, dtype=F32)


def _normalise(field: np.ndarray) -> np.ndarray:
    field -= F32(field.mean(dtype=np.float64))
    sd = float(field.std(dtype=np.float64))
    if sd > 0:
        field *= F32(1.0 / sd)
    return field


def filtered_fields(rng, shape, filters: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Zero-mean, unit-variance real fields: one white spectrum shaped by each filter.

    Fields from the same call share their white noise, so they are correlated the way two
    views of the same tissue are (e.g. a power-law texture and its fine ligament web).
    """
    spec = white_spectrum(rng, shape)
    out = []
    for i, flt in enumerate(filters):
        s = spec if i == len(filters) - 1 else spec.copy()
        s *= flt
        out.append(_normalise(scipy.fft.irfft2(s, s=shape).astype(F32, copy=False)))
        del s
    return out


def power_law_noise(rng, shape, pixel_spacing, beta, f_low=0.04) -> np.ndarray:
    """Gaussian random field with power spectrum ``1/f**beta`` (zero mean, unit variance)."""
    return filtered_fields(rng, shape, [power_law_filter(shape, pixel_spacing, beta, f_low)])[0]


def smoothstep(x, e0, e1):
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (either order), float32."""
    t = np.clip((np.asarray(x, F32) - F32(e0)) / F32(e1 - e0), 0.0, 1.0).astype(F32, copy=False)
    return t * t * (F32(3.0) - F32(2.0) * t)


def upsample(coarse: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """Bilinear upsampling of a field sampled at pixel centres of a ``factor``-times coarser grid.

    Full-resolution pixel ``i`` has its centre at coarse coordinate ``(i + 0.5) / factor - 0.5``;
    edges are clamped. Exact output shape, float32, deterministic.
    """
    coarse = np.asarray(coarse, F32)
    if factor == 1 and coarse.shape == tuple(shape):
        return coarse.copy()
    return resize_linear(coarse, tuple(shape), scale=1.0 / factor)


def radial_power_spectrum(patch: np.ndarray, pixel_spacing: float, nbins: int = 40):
    """Radially averaged power spectrum of a Hann-windowed, mean-removed patch.

    Returns ``(f, power)`` with ``f`` in cycles/mm (log-spaced bin centres, empty bins dropped).
    """
    p = np.asarray(patch, np.float64)
    p = p - p.mean()
    wy = np.hanning(p.shape[0])[:, None]
    wx = np.hanning(p.shape[1])[None, :]
    spec = np.abs(np.fft.fft2(p * wy * wx)) ** 2
    fy = np.fft.fftfreq(p.shape[0], d=pixel_spacing)[:, None]
    fx = np.fft.fftfreq(p.shape[1], d=pixel_spacing)[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2).ravel()
    spec = spec.ravel()
    fmin = 1.0 / (max(p.shape) * pixel_spacing)
    fmax = 0.5 / pixel_spacing
    edges = np.geomspace(fmin, fmax, nbins + 1)
    idx = np.digitize(f, edges) - 1
    ok = (idx >= 0) & (idx < nbins)
    sums = np.bincount(idx[ok], weights=spec[ok], minlength=nbins)
    counts = np.bincount(idx[ok], minlength=nbins)
    centres = np.sqrt(edges[:-1] * edges[1:])
    keep = counts > 0
    return centres[keep], sums[keep] / counts[keep]


def fit_power_law_beta(patch, pixel_spacing, f_range=(0.1, 1.0)) -> float:
    """Slope ``beta`` of ``log P = -beta log f + c`` fitted over ``f_range`` (cycles/mm)."""
    f, pw = radial_power_spectrum(patch, pixel_spacing)
    sel = (f >= f_range[0]) & (f <= f_range[1]) & (pw > 0)
    if sel.sum() < 3:
        raise ValueError("the patch is too small for the requested frequency range")
    slope, _ = np.polyfit(np.log(f[sel]), np.log(pw[sel]), 1)
    return float(-slope)
