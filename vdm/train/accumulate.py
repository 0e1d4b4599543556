"""Gradient accumulation: one optimizer step from k micro-batches of the global batch.

The caller draws the step's randomness (condition dropout, times, noise) for
the whole batch and passes it in with the batch, so the k micro-batches see
exactly the randomness of one pass over the whole: the accumulated gradient
equals the whole-batch gradient up to float summation order, with 1/k of the
activations alive at a time.

Micro-batch i holds examples i, i+k, i+2k, ...: the global batch is split over
the devices in contiguous blocks of its first axis, and this strided split (a
[B] -> [B/k, k] reshape) leaves every example on the device that holds it.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from vdm import sharding


def split_micro_batches(batch: Any, steps: int) -> Any:
    """Every leaf [B, ...] -> [steps, B/steps, ...]; micro-batch i = examples i, i+steps, ..."""
    def one(x):
        b = x.shape[0]
        if b % steps:
            raise ValueError(f"a batch of {b} does not split into {steps} micro-batches")
        x = x.reshape(b // steps, steps, *x.shape[1:])   # [B/k, k, ...]
        return jnp.moveaxis(x, 1, 0)                     # [k, B/k, ...]

    return jax.tree.map(one, batch)


def value_and_grad(loss_fn: Callable[[Any, Any], jax.Array], params: Any, batch: Any,
                   steps: int = 1) -> tuple[jax.Array, Any]:
    """(loss, grads) of ``loss_fn(params, batch)``, a mean over the batch, in ``steps`` micro-batches.

    Micro-batches have equal sizes, so the mean of their means is the batch mean
    (and likewise for the gradients).
    """
    grad_fn = jax.value_and_grad(loss_fn)
    if steps == 1:
        return grad_fn(params, batch)

    def body(carry, micro):
        loss_sum, grad_sum = carry
        # Keep each micro-batch split over the batch axes, as the whole batch was.
        micro = jax.tree.map(lambda x: sharding.constrain(x, ("act_batch",) + (None,) * (x.ndim - 1)), micro)
        loss, grads = grad_fn(params, micro)
        return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads)), None

    zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    (loss_sum, grad_sum), _ = jax.lax.scan(body, zeros, split_micro_batches(batch, steps))
    return loss_sum / steps, jax.tree.map(lambda g: g / steps, grad_sum)
