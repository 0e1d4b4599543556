"""What the first frame alone says about the direction of motion.

Without bounce, an object's start corner is drawn uniformly from the corners from which it
stays inside the frame for the whole stored clip (`shapes_render._sample_objects`), so where
it starts rules directions in or out: an object at the left edge is not moving left. A model
given the first frame (the i2v task) can therefore follow "direction" well above 1/8 without
reading the direction words.

`direction_chance_given_start` is that level: the mean over objects of the posterior
probability of the true direction given the start corner, size and speed, under a uniform
prior over the scene's directions. A sampler that ignores the words but draws motion as the
data does from the first frame scores it in expectation. Objects are taken as independent
(multi-object scenes also reject overlapping draws, which this ignores); with bounce the start
does not depend on the direction and the level is 1 / (number of directions).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from vdm.data.shapes_render import DIRECTION_NAMES, DIRECTION_VECTORS, SceneParams, sprite_centroid, start_bounds


def _rounded_uniform_pmf(k: np.ndarray, lo: np.ndarray, up: np.ndarray) -> np.ndarray:
    """P(floor(U + 0.5) == k) for U uniform on [lo, up] (a point mass at lo if up == lo);
    0 where the interval is empty. Elementwise."""
    width = up - lo
    overlap = np.clip(np.minimum(k + 0.5, up) - np.maximum(k - 0.5, lo), 0.0, None)
    point = ((k - 0.5 <= lo) & (lo < k + 0.5)).astype(np.float64)
    pmf = np.where(width > 1e-9, overlap / np.maximum(width, 1e-9), point)
    return np.where(width >= -1e-9, pmf, 0.0)


def start_posterior(corner: np.ndarray, size: int, speed: float, scene: SceneParams) -> np.ndarray:
    """[D] posterior over ``scene.directions`` of an object whose sprite corner (y, x) is
    ``corner`` in the first frame, given its size and stored speed (px/frame)."""
    if scene.bounce:
        return np.full(len(scene.directions), 1.0 / len(scene.directions))
    vecs = DIRECTION_VECTORS[[DIRECTION_NAMES.index(d) for d in scene.directions]]  # [D, 2]
    lo, up = start_bounds(speed * vecs, size, scene)                                 # [D, 2] each
    lik = _rounded_uniform_pmf(np.asarray(corner, np.float64)[None], lo, up).prod(-1)  # [D]
    if lik.sum() <= 0:
        raise ValueError(f"no direction of {scene.directions} puts an object of size {size} at "
                         f"speed {speed} at corner {tuple(corner)} in a {scene.height}x{scene.width} "
                         f"clip of {scene.num_frames} frames: is this the scene the clips came from?")
    return lik / lik.sum()


def direction_chance_given_start(truth: Mapping[str, np.ndarray], scene: SceneParams,
                                 frame_stride: int = 1) -> float:
    """Mean posterior probability of each object's true direction given its first frame.

    truth: the clips' ground truth as the evaluator holds it (`num_objects` [N], `shape`,
    `size`, `direction`, `speed` [N, J], `positions` [N, J, T, 2] pixel centroids); speeds
    there are per model frame, so ``frame_stride`` (stored frames per model frame) turns them
    back into the stored speed that bounded the start.
    """
    num = np.asarray(truth["num_objects"]).reshape(-1)
    shape, size = np.asarray(truth["shape"]), np.asarray(truth["size"])
    direction, speed = np.asarray(truth["direction"]), np.asarray(truth["speed"]) / frame_stride
    start = np.asarray(truth["positions"])[:, :, 0]  # [N, J, 2] centroids in the first frame
    probs = []
    for i in range(num.shape[0]):
        for j in range(int(num[i])):
            s = int(size[i, j])
            corner = np.floor(start[i, j] - sprite_centroid(int(shape[i, j]), s) + 0.5)
            post = start_posterior(corner, s, float(speed[i, j]), scene)
            name = DIRECTION_NAMES[int(direction[i, j])]
            probs.append(post[scene.directions.index(name)] if name in scene.directions else 0.0)
    return float(np.mean(probs)) if probs else float("nan")
