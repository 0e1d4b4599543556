"""Splash attention: the Pallas TPU flash kernel behind ``layers.attention``'s signature.

``jax.experimental.pallas.ops.tpu.splash_attention`` computes softmax attention blockwise in
VMEM (no [Lq, Lk] logits in HBM) with its own backward kernels. It wants

- query and key lengths that its blocks divide (``BLOCK`` = 128 here), and
- a mask known when the program is traced (none, or a fixed [Lq, Lk] boolean array,
  such as the temporal band, with no fully masked row); per-example masks (text key
  padding) are not static.

``supports`` says whether a call qualifies; ``layers.attention`` sends the rest (the short
temporal and cross-attention sequences of small models) to XLA's attention.

On a mesh of several devices the kernel runs per shard under ``shard_map``: the first batch
axis and the heads split as the activation rules split them, each sequence whole (a layout that
splits a sequence over 'sequence' gathers it at the call). Elsewhere than TPU the kernel
runs in Pallas interpret mode: exact and slow, for tests.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.pallas.ops.tpu import splash_attention as splash

from vdm import sharding

Array = jax.Array
BLOCK = 128


def static_mask(mask) -> np.ndarray | None:
    """The mask as a numpy [Lq, Lk] boolean array, or None if it is not one (traced, or
    with batch axes)."""
    if mask is None or jnp.ndim(mask) != 2:
        return None
    try:
        return np.asarray(mask, bool)
    except jax.errors.TracerArrayConversionError:
        return None


def supports(q_len: int, k_len: int, mask) -> bool:
    """Whether ``splash_attention`` takes this call: block-divisible lengths, and no mask or
    a static [Lq, Lk] one in which every query may attend somewhere (a fully masked row
    averages every key in XLA's attention; the kernel would not)."""
    if q_len % BLOCK or k_len % BLOCK:
        return False
    if mask is None:
        return True
    static = static_mask(mask)
    return static is not None and bool(static.any(-1).all())


@functools.lru_cache(maxsize=64)
def _kernel(heads: int, q_len: int, k_len: int, mask_bytes: bytes | None, interpret: bool):
    if mask_bytes is None:
        head_mask = splash.FullMask((q_len, k_len))
    else:
        head_mask = splash.NumpyMask(np.frombuffer(mask_bytes, bool).reshape(q_len, k_len))
    blocks = splash.BlockSizes(block_q=BLOCK, block_kv=BLOCK, block_kv_compute=BLOCK,
                               block_q_dkv=BLOCK, block_kv_dkv=BLOCK, block_kv_dkv_compute=BLOCK,
                               block_q_dq=BLOCK, block_kv_dq=BLOCK)
    return splash.make_splash_mha_single_device(splash.MultiHeadMask([head_mask] * heads),
                                                block_sizes=blocks, interpret=interpret)


def _local(q: Array, k: Array, v: Array, mask: np.ndarray | None, interpret: bool) -> Array:
    """One device's share: q [..., Lq, H, hd], k/v [..., Lk, H, hd] -> [..., Lq, H, hd]."""
    lead, (q_len, heads, head_dim) = q.shape[:-3], q.shape[-3:]
    kernel = _kernel(heads, q_len, k.shape[-3], None if mask is None else mask.tobytes(), interpret)
    to_kernel = lambda x: jnp.swapaxes(x.reshape((-1,) + x.shape[-3:]), 1, 2)  # [N, H, L, hd]
    q = q * jnp.asarray(head_dim ** -0.5, q.dtype)  # the kernel does not scale the logits
    o = jax.vmap(kernel)(to_kernel(q), to_kernel(k), to_kernel(v))          # [N, H, Lq, hd]
    return jnp.swapaxes(o, 1, 2).reshape(lead + (q_len, heads, head_dim))


def splash_attention(q: Array, k: Array, v: Array, mask=None, *, interpret: bool | None = None) -> Array:
    """q [..., Lq, heads, hd], k/v [..., Lk, heads, hd] -> [..., Lq, heads, hd], scale
    1/sqrt(hd). mask: None or a static [Lq, Lk] boolean (True = may attend); see ``supports``.
    interpret: run the kernel in Pallas interpret mode (default: unless on TPU)."""
    if q.ndim < 4 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"splash attention wants [N, L, heads, head_dim]; got q {q.shape}, k {k.shape}, v {v.shape}")
    if not supports(q.shape[-3], k.shape[-3], mask):
        raise ValueError(f"splash attention wants lengths divisible by {BLOCK} and a static [Lq, Lk] "
                         f"mask; got q {q.shape}, k {k.shape}, mask {None if mask is None else jnp.shape(mask)}")
    if interpret is None:
        interpret = jax.default_backend() != "tpu"
    np_mask = static_mask(mask)
    run = functools.partial(_local, mask=np_mask, interpret=interpret)
    mesh = sharding.active_mesh()
    if mesh is None or mesh.size == 1:
        return run(q, k, v)
    # the batch and heads as the activations are split (act_batch, act_heads); sequences whole
    spec = sharding.logical_to_spec(("act_batch",) + (None,) * (q.ndim - 4) + (None, "act_heads", None))
    return jax.shard_map(run, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec, check_vma=False)(q, k, v)
