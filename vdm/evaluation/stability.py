"""Stability metrics for `moving_shapes` clips: background flicker, identity across shots
(one prompt, several seeds) and drift as a function of frame index.

They reuse the segmentation of `grounded` (palette colours, largest component per prompted
object) and are numpy only.

- background_flicker    grey levels (0-255), mean |x[t+1] - x[t]| over pixels that are
                        background in both frames and not next to any object (the edge of a
                        moving object is not flicker). 0 for the dataset: backgrounds are
                        static; uniform noise gives ~48.
- background_std        grey levels, per-pixel temporal std over pixels that are background
                        in every frame, averaged (slow drifts that flicker misses).
- identity_across_shots over prompts: every prompted object is, in every shot, present in
                        most frames, with the same majority shape class as in the other shots
                        and a median area within +-30% of the median over shots.
- shot_shape_agreement  over (prompt, object): all shots agree on the majority shape class.
- shot_area_spread      over (prompt, object): std / mean of the shots' median areas.
- drift (per frame t, arrays [T]):
    color_presence      every prompted colour is present as an object in frame t.
    shape_adherence     the prompted objects have the prompted shape in frame t.
    area_deviation      |area_t / area_ref - 1|, area_ref the object's area in its first
                        present frame (growth, shrinking, dissolving).
    speed_error         px/frame, | |c_t - c_(t-1)| - prompted speed | (nan at t = 0; a
                        bounce keeps the speed, so it is meaningful with bounces too).
  and per metric a scalar `drift/<metric>_slope`: its least-squares change per frame.
"""
from __future__ import annotations

import warnings

import numpy as np

from vdm.evaluation import grounded

IDENTITY_TOLERANCE = grounded.IDENTITY_TOLERANCE


def _grey(videos: np.ndarray) -> np.ndarray:
    return videos.astype(np.float32).mean(-1)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """8-neighbourhood dilation of bool [..., H, W] by one pixel."""
    out = mask.copy()
    H, W = mask.shape[-2:]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = np.zeros_like(mask)
            ys, yd = slice(max(0, dy), H + min(0, dy)), slice(max(0, -dy), H + min(0, -dy))
            xs, xd = slice(max(0, dx), W + min(0, dx)), slice(max(0, -dx), W + min(0, -dx))
            shifted[..., yd, xd] = mask[..., ys, xs]
            out |= shifted
    return out


def _objects(videos: np.ndarray, min_area: int = grounded.MIN_AREA) -> np.ndarray:
    """bool [N, T, H, W]: pixels of palette-coloured components of at least min_area px
    (specks of noise that happen to be near a palette colour are not objects)."""
    N, T, H, W, _ = videos.shape
    labels = grounded.label_components(grounded.segment_colors(videos).reshape(N * T, H, W))
    ids, inverse, area = np.unique(labels, return_inverse=True, return_counts=True)
    big = (area >= min_area) & (ids >= 0)
    return big[inverse].reshape(N, T, H, W)


def background_metrics(videos: np.ndarray) -> dict[str, float]:
    """Flicker and temporal std of the background; videos uint8 [N, T, H, W, 3] (or float)."""
    videos = grounded.to_uint8(videos)
    if videos.ndim != 5 or videos.shape[1] < 2:
        raise ValueError(f"background metrics need clips [N, T>=2, H, W, 3], got {videos.shape}")
    background = ~_dilate(_objects(videos))  # [N, T, H, W]
    grey = _grey(videos)
    both = background[:, 1:] & background[:, :-1]
    change = np.abs(np.diff(grey, axis=1))
    always = background.all(1)  # [N, H, W]
    std = grey.std(1)
    nan = float("nan")
    return {
        "background_flicker": float(change[both].mean()) if both.any() else nan,
        "background_std": float(std[always].mean()) if always.any() else nan,
    }


def identity_across_shots(shots: np.ndarray, truth: dict[str, np.ndarray], *,
                          tolerance: float = IDENTITY_TOLERANCE) -> dict[str, float]:
    """shots uint8 [P, S, T, H, W, 3]: S clips (seeds) of each of P prompts, whose truth
    (`num_objects` [P], `color`, `shape` [P, J]) is given once per prompt."""
    shots = grounded.to_uint8(shots)
    if shots.ndim != 6 or shots.shape[1] < 2:
        raise ValueError(f"shots must be [prompts, seeds>=2, T, H, W, 3], got {shots.shape}")
    P, S = shots.shape[:2]
    num = np.asarray(truth["num_objects"]).reshape(P)
    color = np.asarray(truth["color"]).reshape(P, -1)
    J = color.shape[1]
    # Every shot measured against its prompt's colours: [P*S, ...] -> [P, S, ...].
    m = grounded.measure_objects(shots.reshape((P * S,) + shots.shape[2:]), np.repeat(color, S, 0),
                                 np.repeat(num, S))
    present = (m["count"] >= 1).reshape(P, S, -1, J)  # [P, S, T, J]
    shape = m["shape"].reshape(P, S, -1, J)
    area = m["area"].reshape(P, S, -1, J).astype(np.float64)
    n_shapes = int(max(shape.max(), 0)) + 1
    votes = np.stack([(shape == k).sum(2) for k in range(n_shapes)], -1)  # [P, S, J, K]
    majority = votes.argmax(-1)  # [P, S, J]
    mostly_present = present.mean(2) > 0.5
    masked = np.where(present, area, np.nan)
    with warnings.catch_warnings():  # an object absent in every frame: nan, then 0
        warnings.simplefilter("ignore", RuntimeWarning)
        med_area = np.nan_to_num(np.nanmedian(masked, axis=2))  # [P, S, J]
    over_shots = np.median(med_area, axis=1, keepdims=True)
    area_ok = np.abs(med_area - over_shots) <= tolerance * over_shots
    same_shape = (majority == majority[:, :1]).all(1)  # [P, J]
    obj_ok = mostly_present.all(1) & same_shape & area_ok.all(1) & (over_shots[:, 0] > 0)
    valid = np.arange(J)[None, :] < num[:, None]
    spread = med_area.std(1) / np.maximum(med_area.mean(1), 1e-9)
    return {
        "identity_across_shots": float((obj_ok | ~valid).all(1).mean()),
        "shot_shape_agreement": float(same_shape[valid].mean()),
        "shot_area_spread": float(spread[valid].mean()),
    }


def _slope(y: np.ndarray) -> float:
    """Least-squares change per index of y (nan entries left out)."""
    x = np.arange(len(y), dtype=np.float64)
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return float("nan")
    xx = x[ok] - x[ok].mean()
    return float((xx * (y[ok] - y[ok].mean())).sum() / (xx**2).sum())


def drift_per_frame(videos: np.ndarray, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-frame scores (module docstring), each float [T], averaged over clips and prompted
    objects. videos uint8 [N, T, H, W, 3]; truth as for `grounded.grounded_metrics`."""
    videos = grounded.to_uint8(videos)
    N, T = videos.shape[:2]
    num = np.asarray(truth["num_objects"]).reshape(N)
    color = np.asarray(truth["color"]).reshape(N, -1)
    shape = np.asarray(truth["shape"]).reshape(N, -1)
    J = color.shape[1]
    valid = np.arange(J)[None, :] < num[:, None]  # [N, J]
    m = grounded.measure_objects(videos, color, num)
    present = m["count"] >= 1  # [N, T, J]
    vmask = np.broadcast_to(valid[:, None, :], present.shape)

    def per_frame(x, mask):  # mean over (clip, object) where mask, per frame
        x = np.where(mask, x, 0.0).astype(np.float64)
        count = mask.sum((0, 2))
        with np.errstate(all="ignore"):
            return np.where(count > 0, x.sum((0, 2)) / np.maximum(count, 1), np.nan)

    out = {
        "color_presence": ((present | ~vmask).all(-1)).mean(0).astype(np.float64),
        "shape_adherence": per_frame(present & (m["shape"] == shape[:, None, :]), vmask),
    }
    area = m["area"].astype(np.float64)
    first = np.where(present.any(1), present.argmax(1), 0)  # [N, J]
    ref = np.take_along_axis(area, first[:, None, :], 1)  # [N, 1, J]
    ok = present & vmask & (ref > 0)
    out["area_deviation"] = per_frame(np.abs(area / np.maximum(ref, 1) - 1.0), ok)
    if "speed" in truth:
        speed = np.asarray(truth["speed"], np.float64).reshape(N, J)
        step = np.linalg.norm(np.diff(m["centroid"], axis=1), axis=-1)  # [N, T-1, J], nan if absent
        err = np.abs(step - speed[:, None, :])
        ok = np.isfinite(err) & vmask[:, 1:]
        out["speed_error"] = np.r_[np.nan, per_frame(np.nan_to_num(err), ok)]
    return out


def drift_summary(drift: dict[str, np.ndarray]) -> dict[str, float]:
    """Scalars `drift/<name>_slope` (change per frame) from `drift_per_frame`'s curves."""
    return {f"drift/{k}_slope": _slope(np.asarray(v, np.float64)) for k, v in drift.items()}
