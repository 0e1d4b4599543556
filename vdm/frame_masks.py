"""Which frames of a clip are given: the mask strategies of frame conditions.

A mask is float32 [B, T], 1 where the frame is known. The strategies:

    first       frame 0                      image-to-video
    last        frame T-1                    generate what led to an end frame
    first_last  frames 0 and T-1             interpolation between anchors
    prefix      frames 0..k-1, k ~ U{1..T-1}  prediction / extension
    random      each frame with prob. 1/2     in-filling (at least one known, one unknown)

Training draws one strategy per example from a config mix {name: probability};
sampling builds the mask from what the user gives (`mask_from_indices`).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

STRATEGIES = ("first", "last", "first_last", "prefix", "random")


def check_mix(mix: Mapping[str, float], what: str = "frame mask mix") -> dict[str, float]:
    """{name: probability} with known names and a positive total, normalised."""
    bad = [k for k in mix if k not in STRATEGIES]
    if bad:
        raise ValueError(f"{what}: unknown strategies {bad}; valid: {list(STRATEGIES)}")
    probs = {k: float(v) for k, v in mix.items() if float(v) != 0.0}
    if any(v < 0 for v in probs.values()) or not probs:
        raise ValueError(f"{what}: probabilities must be >= 0 with a positive total, got {dict(mix)}")
    total = sum(probs.values())
    return {k: v / total for k, v in probs.items()}


def _strategy(name: str, key: jax.Array, batch: int, T: int) -> jax.Array:
    """bool [B, T] masks of one strategy."""
    t = jnp.arange(T)[None, :]  # [1, T]
    if name == "first":
        m = t == 0
    elif name == "last":
        m = t == T - 1
    elif name == "first_last":
        m = (t == 0) | (t == T - 1)
    elif name == "prefix":
        k = jax.random.randint(key, (batch, 1), 1, max(T, 2))  # 1..T-1 known frames
        m = t < k
    elif name == "random":
        m = jax.random.bernoulli(key, 0.5, (batch, T))
        m = m | (~m.any(-1, keepdims=True) & (t == 0))  # at least one known
        m = m & ~(m.all(-1, keepdims=True) & (t == T - 1))  # at least one to generate
    else:
        raise ValueError(f"unknown frame mask strategy {name!r}; valid: {list(STRATEGIES)}")
    return jnp.broadcast_to(m, (batch, T))


def sample_masks(key: jax.Array, batch: int, num_frames: int, mix: Mapping[str, float]) -> jax.Array:
    """float32 [B, T]: one strategy per example, drawn from ``mix``."""
    probs = check_mix(mix)
    names = list(probs)
    k_choice, *k_each = jax.random.split(key, len(names) + 1)
    choice = jax.random.choice(k_choice, len(names), (batch,), p=jnp.asarray(list(probs.values())))
    masks = jnp.stack([_strategy(n, k, batch, num_frames) for n, k in zip(names, k_each)])  # [S, B, T]
    return masks[choice, jnp.arange(batch)].astype(jnp.float32)


def mask_from_indices(indices: Sequence[int], num_frames: int) -> np.ndarray:
    """float32 [T] with 1 at the given frame indices (negative counts from the end)."""
    mask = np.zeros(num_frames, np.float32)
    for i in indices:
        j = i + num_frames if i < 0 else i
        if not 0 <= j < num_frames:
            raise ValueError(f"frame index {i} is outside a clip of {num_frames} frames")
        mask[j] = 1.0
    return mask
