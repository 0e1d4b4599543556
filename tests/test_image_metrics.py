"""PSNR and SSIM against closed forms and a direct per-window reference."""
import numpy as np
import pytest

from vdm.evaluation.image_metrics import psnr, ssim


def test_psnr_closed_form():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 10  # MSE = 100 / 3 on every image
    np.testing.assert_allclose(psnr(a, b), 10 * np.log10(255**2 / (100 / 3)))
    assert psnr(a, a) == np.inf
    f = np.zeros((1, 4, 4, 3), np.float32)
    np.testing.assert_allclose(psnr(f, f + 0.2), 10 * np.log10(4 / 0.04), rtol=1e-6)  # range 2
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, b[:1])


def _ssim_reference(a, b, window=11, sigma=1.5):
    """SSIM computed window by window with explicit Gaussian weights (single channel)."""
    x = np.arange(window) - (window - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    H, W = a.shape
    for i in range(H - window + 1):
        for j in range(W - window + 1):
            pa, pb = a[i:i + window, j:j + window], b[i:i + window, j:j + window]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return np.mean(vals)


def test_ssim_matches_a_direct_reference():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 18), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.uint8)
    ours = ssim(a[None, :, :, None], b[None, :, :, None])
    np.testing.assert_allclose(ours, _ssim_reference(a.astype(float), b.astype(float)), rtol=1e-10)
    assert ssim(a[None, :, :, None], a[None, :, :, None]) == pytest.approx(1.0)
    noisier = np.clip(a + rng.normal(0, 80, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a[None, :, :, None], noisier[None, :, :, None]) < ours < 1.0
