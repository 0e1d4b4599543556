"""Fréchet distance between sets of clips (FVD-style), with a pluggable feature extractor.

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

of Gaussians fitted to the features of two sets of clips. The trace of the matrix square
root is computed without scipy: (S1 S2)^(1/2) has the eigenvalues of
S1^(1/2) S2 S1^(1/2), which is symmetric positive semi-definite, so two `eigh` calls give it
stably, also when the covariances are singular (fewer clips than feature dimensions).

The default extractor, `random_conv` (`RandomConvFeatures`), needs no downloaded weights:
fixed random 3D convolution filters (seeded, so every run and machine computes the same
features) over 2-frame x 4x4 patches, ReLU, then per filter the mean response and the mean
|temporal change| of the response, plus per-channel pixel mean and std and the mean |frame
difference|. It sees colour, local shape and motion energy; it is a sanity distance for
comparing runs of THIS codebase on the same data and clip shape. It is NOT I3D FVD: its
numbers are not comparable to published FVD, nor across extractors, resolutions or clip
lengths. For published-style FVD, give `load_extractor` a feature model of your own:
    - "path/to/weights.npz": a conv extractor of the same form with your filters
      (`kernel` [kt, kh, kw, 3, F], optional `bias` [F], optional `stride` [3]);
    - "package.module:factory": `factory()` returns a callable uint8 [N, T, H, W, 3] ->
      float [N, D] (e.g. a wrapper around an I3D checkpoint on your disk); its `name`
      attribute, if any, names it in the statistics cache.

Reference statistics of a dataset split are computed once and cached next to the data
(`reference_stats`), keyed by dataset config, split, extractor name, clip length and
stride.
"""
from __future__ import annotations

import hashlib
import importlib
import os
from typing import Callable, Protocol

import numpy as np

DEFAULT_EXTRACTOR = "random_conv"


class Extractor(Protocol):
    name: str

    def __call__(self, videos: np.ndarray) -> np.ndarray: ...


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (module docstring)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {s1.shape} vs {s2.shape}")
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S1^(1/2)
    inner = root1 @ s2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)
    return max(d, 0.0)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] of features [N, D] (N >= 2)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


# --------------------------------------------------------------------------------------------
# Extractors


def _as_float(videos: np.ndarray) -> np.ndarray:
    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3:
        raise ValueError(f"videos must be [N, T, H, W, 3], got {videos.shape}")
    if videos.dtype == np.uint8:
        return videos.astype(np.float32) / 127.5 - 1.0
    return videos.astype(np.float32)


class ConvFeatures:
    """ReLU(3D conv) pooled into per-filter mean response and mean |temporal change| of the
    response, plus pixel statistics (module docstring). kernel [kt, kh, kw, 3, F]."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None = None, stride=(1, 2, 2),
                 name: str = "conv", batch: int = 16):
        self.kernel = np.asarray(kernel, np.float32)
        if self.kernel.ndim != 5 or self.kernel.shape[3] != 3:
            raise ValueError(f"kernel must be [kt, kh, kw, 3, filters], got {self.kernel.shape}")
        F = self.kernel.shape[-1]
        self.bias = np.zeros(F, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(F)
        self.stride = tuple(int(s) for s in stride)
        self.name, self.batch = name, batch

    def _one_batch(self, x: np.ndarray) -> np.ndarray:
        kt, kh, kw, _, F = self.kernel.shape
        st, sh, sw = self.stride
        N, T, H, W, _ = x.shape
        if T < kt + 1 or H < kh or W < kw:
            raise ValueError(f"clips {x.shape[1:]} are smaller than the extractor needs "
                             f"({kt + 1} frames, {kh}x{kw} px)")
        windows = np.lib.stride_tricks.sliding_window_view(x, (kt, kh, kw), axis=(1, 2, 3))
        windows = windows[:, ::st, ::sh, ::sw]  # [N, T', H', W', 3, kt, kh, kw]
        response = np.einsum("nthwcabd,abdcf->nthwf", windows, self.kernel, optimize=True)
        response = np.maximum(response + self.bias, 0)  # [N, T', H', W', F]
        change = np.abs(np.diff(response, axis=1)).mean((1, 2, 3))
        pixels = [x.mean((1, 2, 3)), x.std((1, 2, 3)), np.abs(np.diff(x, axis=1)).mean((1, 2, 3, 4))[:, None]]
        return np.concatenate([response.mean((1, 2, 3)), change] + pixels, -1)

    def __call__(self, videos: np.ndarray) -> np.ndarray:
        """uint8 (or [-1, 1] float) [N, T, H, W, 3] -> float32 [N, 2F + 7]."""
        x = _as_float(videos)
        return np.concatenate([self._one_batch(x[i:i + self.batch]) for i in range(0, len(x), self.batch)])


class RandomConvFeatures(ConvFeatures):
    """The default extractor: 32 fixed random filters (seed 0) over 2x4x4x3 patches,
    normalised to unit norm, with random biases; see the module docstring."""

    def __init__(self, filters: int = 32, seed: int = 0):
        rng = np.random.default_rng(seed)
        kernel = rng.standard_normal((2, 4, 4, 3, filters)).astype(np.float32)
        kernel /= np.linalg.norm(kernel.reshape(-1, filters), axis=0)
        bias = rng.uniform(-0.5, 0.5, filters).astype(np.float32)
        super().__init__(kernel, bias, stride=(1, 2, 2), name=f"{DEFAULT_EXTRACTOR}{filters}s{seed}")


def load_extractor(spec: str = "") -> Extractor:
    """"" or "random_conv": the default; "X.npz": a conv extractor with those filters;
    "package.module:factory": whatever `factory()` returns (module docstring)."""
    spec = spec.strip()
    if spec in ("", DEFAULT_EXTRACTOR):
        return RandomConvFeatures()
    if spec.endswith(".npz"):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"feature extractor weights {spec!r} do not exist")
        with open(spec, "rb") as f:
            digest = hashlib.sha1(f.read()).hexdigest()[:10]
        with np.load(spec) as w:
            if "kernel" not in w:
                raise ValueError(f"{spec}: needs an array 'kernel' [kt, kh, kw, 3, F]; has {list(w)}")
            stride = tuple(w["stride"]) if "stride" in w else (1, 2, 2)
            return ConvFeatures(w["kernel"], w["bias"] if "bias" in w else None, stride,
                                name=f"npz-{os.path.basename(spec)[:-4]}-{digest}")
    module, colon, attr = spec.partition(":")
    if not colon or not module or not attr:
        raise ValueError(f"feature extractor {spec!r}: expected '', '{DEFAULT_EXTRACTOR}', a .npz "
                         "path, or 'package.module:factory'")
    factory: Callable = getattr(importlib.import_module(module), attr)
    extractor = factory()
    if not hasattr(extractor, "name"):
        try:
            extractor.name = spec.replace(":", "-")
        except AttributeError:  # e.g. a plain function: wrap it to carry a name
            fn = extractor
            extractor = NamedFeatures(fn, spec.replace(":", "-"))
    return extractor


class NamedFeatures:
    """A named wrapper around a plain feature function."""

    def __init__(self, fn: Callable, name: str):
        self.fn, self.name = fn, name

    def __call__(self, videos: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(videos))


# --------------------------------------------------------------------------------------------
# Reference statistics


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def reference_stats(clips_fn: Callable[[], np.ndarray], extractor: Extractor, *, cache_dir: str,
                    key: dict) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of `extractor(clips_fn())`, cached as an .npz in ``cache_dir`` named by
    ``key`` (e.g. dataset config, split, clip length, stride) and the extractor's name;
    ``clips_fn`` is only called when there is no cache yet."""
    parts = [f"{k}={key[k]}" for k in sorted(key)] + [f"features={extractor.name}"]
    path = os.path.join(cache_dir, _safe("_".join(parts)) + ".npz")
    if os.path.exists(path):
        with np.load(path) as f:
            return f["mu"], f["sigma"]
    mu, sigma = statistics(extractor(clips_fn()))
    os.makedirs(cache_dir, exist_ok=True)
    tmp = path + f".tmp{os.getpid()}.npz"
    np.savez(tmp, mu=mu, sigma=sigma)
    os.replace(tmp, path)  # another process may be writing the same file
    return mu, sigma


def distance_to(videos: np.ndarray, reference: tuple[np.ndarray, np.ndarray], extractor: Extractor) -> float:
    """Fréchet distance of clips uint8 [N, T, H, W, 3] from reference (mu, sigma)."""
    return frechet_distance(*statistics(extractor(videos)), *reference)
