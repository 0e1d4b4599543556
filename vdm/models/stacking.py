"""Running a stack of transformer blocks: unrolled or as one ``lax.scan``, with remat.

Unrolled, a depth-L model traces (and XLA compiles) L copies of the block;
scanned, the block's parameters carry a leading ``layers`` axis and the body
is traced once, so compile time barely grows with depth. A layout whose
blocks differ (interleaved: spatial, temporal, spatial, ...) repeats a
pattern of ``period`` blocks: it is scanned as ``period`` stacks, one per
position in the pattern, and the scan body applies one block of each.

Rematerialisation (``remat``) trades compute for activation memory: the
backward pass recomputes what the forward pass did not keep.

- ``none``  keep every activation the backward pass needs (fastest, most memory)
- ``dots``  keep matmul outputs, recompute the cheap elementwise work
            (``jax.checkpoint_policies.dots_with_no_batch_dims_saveable``)
- ``full``  keep only each block's input; recompute the whole block
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
from flax import nnx

REMAT_POLICIES = ("none", "dots", "full")
LAYERS_AXIS = "layers"  # logical name of the stacked axis (replicated in vdm/sharding.py)

Array = jax.Array


def check_remat(remat: str) -> None:
    if remat not in REMAT_POLICIES:
        raise ValueError(f"remat {remat!r} is not one of {REMAT_POLICIES}")


def _checkpointed(fn: Callable, remat: str) -> Callable:
    check_remat(remat)
    if remat == "none":
        return fn
    policy = jax.checkpoint_policies.dots_with_no_batch_dims_saveable if remat == "dots" else None
    return jax.checkpoint(fn, policy=policy)


def stacked(create: Callable[[nnx.Rngs], nnx.Module], count: int, rngs: nnx.Rngs) -> nnx.Module:
    """``count`` independently initialised copies of ``create(rngs)``, as one module whose
    parameters have a leading axis of size ``count`` (logical name ``layers``)."""

    @nnx.split_rngs(splits=count)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: LAYERS_AXIS})
    def create_all(rngs):
        return create(rngs)

    return create_all(rngs)


def run_unrolled(blocks: Sequence[nnx.Module], h: Array, apply: Callable, remat: str) -> Array:
    """h -> apply(block_L, ... apply(block_1, h)); each block rematerialised per ``remat``."""
    if remat == "none":
        for block in blocks:
            h = apply(block, h)
        return h
    for block in blocks:
        graphdef, params = nnx.split(block)

        def one(params, h, graphdef=graphdef):
            return apply(nnx.merge(graphdef, params), h)

        h = _checkpointed(one, remat)(params, h)
    return h


def run_scanned(stacks: Sequence[nnx.Module], h: Array, apply: Callable, remat: str) -> Array:
    """One ``lax.scan`` over the stacks' leading axis; the body applies one block of each
    stack in order (the layout's repeating pattern), rematerialised per ``remat``."""
    graphdefs, params = zip(*(nnx.split(s) for s in stacks))

    def body(h, layer_params):                       # layer_params: one slice of every stack
        for graphdef, p in zip(graphdefs, layer_params):
            h = apply(nnx.merge(graphdef, p), h)
        return h, None

    h, _ = jax.lax.scan(_checkpointed(body, remat), h, tuple(params))
    return h


def load_unrolled(stacks: Sequence[nnx.Module], unrolled: Sequence[nnx.Module]) -> None:
    """Copy the weights of unrolled blocks [b0, b1, ..., b_{L-1}] into scanned stacks in
    place: stack p receives blocks p, p + P, p + 2P, ... (P = number of stacks). The
    stacks keep their own variable metadata (the 'layers' axis name)."""
    period = len(stacks)
    if len(unrolled) % period:
        raise ValueError(f"{len(unrolled)} blocks do not split into {period} stacks")
    values = [nnx.to_pure_dict(nnx.state(b)) for b in unrolled]
    for p, stack in enumerate(stacks):
        state = nnx.state(stack)
        nnx.replace_by_pure_dict(state, jax.tree.map(lambda *xs: jax.numpy.stack(xs), *values[p::period]))
        nnx.update(stack, state)
