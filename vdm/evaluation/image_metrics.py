"""PSNR and SSIM for prediction and reconstruction, in numpy.

Images are uint8 (range 255) or float in [-1, 1] (range 2), shaped [..., H, W, C]; the
score is averaged over everything but (H, W, C). SSIM is Wang et al. (2004) with an
11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, per channel, over 'valid'
window positions (frames smaller than the window use a window of the frame's size).
"""
from __future__ import annotations

import numpy as np


def _as_float(x: np.ndarray) -> tuple[np.ndarray, float]:
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float64), 255.0
    return x.astype(np.float64), 2.0


def _pair(a, b):
    (a, ra), (b, rb) = _as_float(a), _as_float(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if ra != rb:
        raise ValueError("compare uint8 with uint8 and float with float")
    return a, b, ra


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR (dB) over images; identical images give inf."""
    a, b, r = _pair(a, b)
    mse = ((a - b) ** 2).reshape(-1, int(np.prod(a.shape[-3:]))).mean(-1)
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(r * r / mse)))


def _gaussian(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering over the H and W axes of [..., H, W, C]."""
    k = len(g)
    H, W = x.shape[-3], x.shape[-2]
    rows = sum(g[i] * x[..., i:H - k + 1 + i, :, :] for i in range(k))
    return sum(g[i] * rows[..., :, i:W - k + 1 + i, :] for i in range(k))


def ssim(a: np.ndarray, b: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM over images and channels (1 for identical images)."""
    a, b, r = _pair(a, b)
    window = min(window, a.shape[-3], a.shape[-2])
    g = _gaussian(window, sigma)
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    var_a = _filter(a * a, g) - mu_a**2
    var_b = _filter(b * b, g) - mu_b**2
    cov = _filter(a * b, g) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())
