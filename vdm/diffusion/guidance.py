"""Classifier-free guidance: combining conditional and unconditional predictions.

Guidance is not the sampler's business: the caller evaluates the model under
each condition set, combines the outputs here, and hands the sampler the
combined `model_fn`. All predictions here are linear in (x0, eps), so combining
model outputs equals combining the implied x0 / eps.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def cfg_combine(cond_out: jax.Array, uncond_out: jax.Array, scale) -> jax.Array:
    """uncond + scale * (cond - uncond): scale 1 is the conditional output, 0 the unconditional."""
    return uncond_out + scale * (cond_out - uncond_out)


def multi_guidance(outputs: Sequence[jax.Array], scales: Sequence) -> jax.Array:
    """Guidance over N nested condition sets (InstructPix2Pix decomposition).

    outputs = [out(none), out(c1), out(c1, c2), ..., out(c1..cN)], N + 1 arrays
    scales  = [s1, ..., sN]
    result  = out(none) + sum_i s_i * (out(c1..ci) - out(c1..c_{i-1}))

    Each s_i scales the contribution of adding condition i to those before it.
    With every scale 1 the sum telescopes to the fully conditioned output; with
    N = 1 this is `cfg_combine`.
    """
    if len(outputs) != len(scales) + 1:
        raise ValueError(
            f"need one more output than scales (the unconditional one first), "
            f"got {len(outputs)} outputs and {len(scales)} scales"
        )
    result = outputs[0]
    for i, scale in enumerate(scales):
        result = result + scale * (outputs[i + 1] - outputs[i])
    return jnp.asarray(result)


def guidance_weights(scales: Sequence[float]) -> list[float]:
    """The weight of each nested output in `multi_guidance`, as a linear combination.

    result = sum_j w_j out(c1..cj) with w_0 = 1 - s_1, w_j = s_j - s_{j+1}, w_N = s_N.
    An output whose weight is 0 (e.g. out(none) when s_1 = 1) need not be computed:
    with every scale 1 only the fully conditioned output is left.
    """
    s = [1.0] + [float(x) for x in scales] + [0.0]
    return [s[j] - s[j + 1] for j in range(len(scales) + 1)]
