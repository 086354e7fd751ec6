"""Image-quality metrics of paper 004 (Tables 6-10), numpy and scipy only.

Reference metrics compare a synthetic patch with a real one; images are taken on the paper's
0..255 scale (its PSNR is ``10 log10(255^2 / MSE)``, Eq. 11):

* :func:`mse` (Eq. 4), :func:`psnr` (Eq. 11);
* :func:`ssim` (Eqs. 5-8; Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03, the
  population covariance, the mean over the window positions that fit inside the image, exactly
  as ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``) and :func:`dssim` = (1 - SSIM) / 2 (Eq. 9);
* :func:`fsim` (Eq. 10; Zhang et al. 2011), transcribed from the authors' FeatureSIM.m: phase
  congruency after Kovesi (log-Gabor filters, 4 scales from wavelength 6 by factor 2, 4
  orientations, sigmaOnf 0.55, dThetaOnSigma 1.2, noise threshold k = 2 rescaled by 1/1.7),
  Scharr-like gradient magnitude, T1 = 0.85, T2 = 160, weighted by max(PC1, PC2). Grey-level
  FSIM only; images under 256 px are not downsampled (the reference's F = 1).

Diversity: :func:`ms_ssim` (Wang et al. 2003) between pairs of synthetic patches; the standard
5-scale weights need 176 px, so a 64 px patch uses the first 3 scales (64, 32, 16 px, the
smallest that still holds the 11-pixel window) with their weights renormalised to sum to 1.

Distribution: :func:`frechet_distance` between two Gaussians, ``|m1 - m2|^2 + Tr(C1 + C2 -
2 (C1 C2)^(1/2))`` (paper 004 Eq. 2), and :func:`feature_statistics`. mammolens computes it on the
features of its own lesion-class classifier and calls it the *Frechet classifier distance*; it is
not FID (no Inception weights can be downloaded here) and its values are not comparable to FID's.
A user who has an InceptionV3 as ONNX gets the real FID from :func:`inception_features`.

Not computed, and why: BRISQUE and NIQE need models fitted to natural images with opinion scores
(BRISQUE's SVR, NIQE's pristine multivariate Gaussian); the maintained libraries that compute
them (pyiqa, piq) fetch those files at first use, which this offline workplace cannot do, and
they are torch packages. PIQE needs no model, but no maintained torch-free implementation exists.
The geometry score needs persistent-homology tooling (gudhi) the project does not carry.
"""
from __future__ import annotations

import math

import numpy as np

PEAK = 255.0
NOT_COMPUTED = {
    "BRISQUE": "needs an SVR fitted to opinion scores; maintained implementations (pyiqa, piq) download it at first use",
    "PIQE": "no maintained implementation outside torch toolkits (pyiqa) that also download weights",
    "NIQE": "needs a pristine-image model; maintained implementations (pyiqa) download it at first use",
    "GS": "the geometry score needs persistent-homology tooling (gudhi) not carried by mammolens",
}


def to_255(image) -> np.ndarray:
    """[0, 1] image -> float64 on the paper's 0..255 scale."""
    return np.asarray(image, dtype=np.float64) * PEAK


def mse(a, b) -> float:
    """Eq. 4 on 0..255 values (inputs in [0, 1])."""
    return float(np.mean((to_255(a) - to_255(b)) ** 2))


def psnr(a, b) -> float:
    """Eq. 11: 10 log10(255^2 / MSE) in dB; inf for identical images."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(PEAK**2 / m)


def _gauss(x: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma, mode="reflect", truncate=3.5)


def _ssim_cs(x: np.ndarray, y: np.ndarray, peak: float = PEAK) -> tuple[float, float]:
    """(SSIM, contrast-structure term), each the mean over window positions inside the image."""
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = _gauss(x), _gauss(y)
    vx = _gauss(x * x) - mx * mx
    vy = _gauss(y * y) - my * my
    cxy = _gauss(x * y) - mx * my
    cs = (2 * cxy + c2) / (vx + vy + c2)
    s = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    pad = 5  # (11 - 1) / 2: the window's half size
    inner = (slice(pad, -pad), slice(pad, -pad))
    return float(s[inner].mean()), float(cs[inner].mean())


def ssim(a, b) -> float:
    """Structural similarity (Eqs. 5-8) of two [0, 1] images on the 0..255 scale."""
    a, b = to_255(a), to_255(b)
    if min(a.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11 x 11 pixels, not {a.shape}")
    return _ssim_cs(a, b)[0]


def dssim(a, b) -> float:
    """Eq. 9: (1 - SSIM) / 2."""
    return (1.0 - ssim(a, b)) / 2.0


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(a, b) -> float:
    """Multi-scale SSIM over as many of the 5 standard scales as the image holds (>= 11 px each)."""
    x, y = to_255(a), to_255(b)
    scales = 1
    while scales < 5 and min(x.shape) // 2**scales >= 11:
        scales += 1
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    value = 1.0
    for level in range(scales):
        s, cs = _ssim_cs(x, y)
        if level == scales - 1:
            value *= max(s, 0.0) ** weights[level]
        else:
            value *= max(cs, 0.0) ** weights[level]
            h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
            x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
            y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
    return float(value)


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    def axis(n):
        return (np.arange(n) - (n - 1) / 2) / (n - 1) if n % 2 else (np.arange(n) - n // 2) / n

    return np.meshgrid(axis(cols), axis(rows))


def phase_congruency(image: np.ndarray, nscale: int = 4, norient: int = 4, min_wavelength: float = 6.0,
                     mult: float = 2.0, sigma_onf: float = 0.55, dtheta_on_sigma: float = 1.2, k: float = 2.0,
                     epsilon: float = 1e-4) -> np.ndarray:
    """Kovesi's phase congruency as FSIM's reference code computes it (``phasecong2``)."""
    rows, cols = image.shape
    spectrum = np.fft.fft2(image)
    x, y = _grid(rows, cols)
    radius = np.fft.ifftshift(np.sqrt(x**2 + y**2))
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius[0, 0] = 1.0
    lowpass = np.fft.ifftshift(1.0 / (1.0 + (np.sqrt(x**2 + y**2) / 0.45) ** (2 * 15)))
    log_gabor = []
    for s in range(nscale):
        fo = 1.0 / (min_wavelength * mult**s)
        g = np.exp(-(np.log(radius / fo) ** 2) / (2 * math.log(sigma_onf) ** 2)) * lowpass
        g[0, 0] = 0.0
        log_gabor.append(g)
    theta_sigma = math.pi / norient / dtheta_on_sigma
    sin_t, cos_t = np.sin(theta), np.cos(theta)
    energy_all = np.zeros((rows, cols))
    an_all = np.zeros((rows, cols))
    for o in range(norient):
        angle = o * math.pi / norient
        ds = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        dc = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        spread = np.exp(-(np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma**2))
        sum_e = np.zeros((rows, cols))
        sum_o = np.zeros((rows, cols))
        sum_an = np.zeros((rows, cols))
        eo, ifft_filters = [], []
        em_n = 0.0
        for s in range(nscale):
            filt = log_gabor[s] * spread
            ifft_filters.append(np.real(np.fft.ifft2(filt)) * math.sqrt(rows * cols))
            response = np.fft.ifft2(spectrum * filt)
            eo.append(response)
            sum_an += np.abs(response)
            sum_e += response.real
            sum_o += response.imag
            if s == 0:
                em_n = float(np.sum(filt**2))
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + epsilon
        mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
        energy = np.zeros((rows, cols))
        for response in eo:
            e, od = response.real, response.imag
            energy += e * mean_e + od * mean_o - np.abs(e * mean_o - od * mean_e)
        mean_e2n = -np.median(np.abs(eo[0]) ** 2) / math.log(0.5)
        noise_power = mean_e2n / em_n
        sum_an2 = sum(f**2 for f in ifft_filters).sum()
        sum_aiaj = sum((ifft_filters[i] * ifft_filters[j]).sum()
                       for i in range(nscale - 1) for j in range(i + 1, nscale))
        tau = math.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj) / 2)
        threshold = (tau * math.sqrt(math.pi / 2) + k * math.sqrt((2 - math.pi / 2) * tau**2)) / 1.7
        energy_all += np.maximum(energy - threshold, 0.0)
        an_all += sum_an
    return energy_all / an_all


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    from scipy.signal import convolve2d

    dx = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]], dtype=np.float64) / 16
    gx = convolve2d(image, dx, mode="same")
    gy = convolve2d(image, dx.T, mode="same")
    return np.sqrt(gx**2 + gy**2)


def fsim_features(image) -> tuple[np.ndarray, np.ndarray]:
    """(phase congruency, gradient magnitude) of a [0, 1] image: computed once, compared many times."""
    x = to_255(image)
    return phase_congruency(x), _gradient_magnitude(x)


def fsim(a, b) -> float:
    """Feature similarity (Eq. 10) of two grey [0, 1] images (0..255 scale inside, as the reference)."""
    return fsim_compare(fsim_features(a), fsim_features(b))


def fsim_compare(fa, fb) -> float:
    """FSIM from two :func:`fsim_features` results."""
    (pc1, g1), (pc2, g2) = fa, fb
    t1, t2 = 0.85, 160.0
    s_pc = (2 * pc1 * pc2 + t1) / (pc1**2 + pc2**2 + t1)
    s_g = (2 * g1 * g2 + t2) / (g1**2 + g2**2 + t2)
    pcm = np.maximum(pc1, pc2)
    return float(np.sum(s_pc * s_g * pcm) / np.sum(pcm))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples) of a feature matrix."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError("the Frechet distance needs at least two feature vectors per set")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (paper 004, Eq. 2).

    The matrix square root is taken with scipy; when the product is singular (fewer samples than
    feature dimensions) ``eps`` is added to both diagonals first, as the reference FID code does.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    import warnings

    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product is expected with few samples; handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(s1)) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


INCEPTION_SIZE = 299


def inception_features(onnx_path, images, batch: int = 16) -> np.ndarray:
    """Features of a user-supplied InceptionV3 ONNX file for the real FID (none is downloaded).

    The file must take one input (N, 3, 299, 299) with values in [0, 1] (the contract of
    pytorch-fid's FID network, which resizes and normalises inside when exported with its
    defaults) and give the 2048-d pool features as its first output. Grey [0, 1] patches are
    resized bilinearly to 299 px and repeated on the three channels.
    """
    from skimage.transform import resize

    from inference.runtime import create_session

    session = create_session(onnx_path, device="cpu")
    name = next(iter(session.inputs))
    out = []
    for start in range(0, len(images), batch):
        chunk = np.stack([resize(np.asarray(im, np.float32), (INCEPTION_SIZE, INCEPTION_SIZE), order=1,
                                 preserve_range=True) for im in images[start : start + batch]]).astype(np.float32)
        result = session.run({name: np.repeat(chunk[:, None], 3, axis=1)})
        out.append(np.asarray(next(iter(result.values()))).reshape(len(chunk), -1))
    return np.concatenate(out).astype(np.float64)


def frechet_features(real, fake) -> float:
    """Frechet distance between the Gaussians fitted to two feature matrices."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))
