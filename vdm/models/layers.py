"""Building blocks shared by the video DiT and the text encoder.

Everything here is shape-generic: attention takes ``[N, L, heads, head_dim]``
and does not know whether ``N`` is a batch of clips, of frames or of time
lines. Which axis is attended over is the DiT's business (``dit.py``).

Parameters carry LOGICAL axis names only (see ``vdm/sharding.py``):

- ``embed``     the model width ``D``
- ``mlp``       the MLP hidden width
- ``heads``     attention heads (the tensor-parallel axis of attention)
- ``head_dim``  features within a head
- ``cond``      the input side of conditioning projections (small, replicated)
- ``patch``     flattened tubelet features (``pt*ph*pw*C``)
- ``vocab``     token vocabulary

Kernels keep heads as their own axis (``qkv``: ``[embed, 3, heads, head_dim]``,
``out``: ``[heads, head_dim, embed]``) so tensor parallelism splits heads and
never cuts through a head.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vdm import sharding as _sharding  # noqa: F401  (disables eager sharding before modules exist)
from vdm.models.einsum_attention import einsum_attention
from vdm.models.splash_attention import splash_attention
from vdm.models.splash_attention import supports as splash_supports

Array = jax.Array
Rope = tuple[Array, Array]  # (cos, sin), each [..., L, head_dim // 2]

ATTENTION_IMPLEMENTATIONS = (None, "xla", "cudnn", "einsum", "splash")

_default_kernel = nnx.initializers.lecun_normal()
_zeros = nnx.initializers.zeros_init()


def _part(init, names: Sequence[str | None]):
    return nnx.with_partitioning(init, tuple(names))


def param_count(model: nnx.Module, filter=nnx.Param) -> int:
    """Number of parameter scalars (works on abstract models from ``nnx.eval_shape``)."""
    state = nnx.state(model, filter)
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(state)))


# --- attention ------------------------------------------------------------------

def check_attention_implementation(implementation: str | None) -> None:
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"attention implementation {implementation!r} is not one of {ATTENTION_IMPLEMENTATIONS}")


def attention(q: Array, k: Array, v: Array, *, mask: Array | None = None,
              implementation: str | None = None) -> Array:
    """Softmax attention ``softmax(q k^T / sqrt(head_dim)) v``.

    q: [N, Lq, heads, head_dim]; k, v: [N, Lk, heads, head_dim] -> [N, Lq, heads, head_dim].
      More leading batch axes are allowed ([..., N, L, heads, head_dim]) with a [Lq, Lk] mask.
    mask: boolean, True = may attend; [Lq, Lk], [N, Lq, Lk] or anything
      broadcastable to [N, heads, Lq, Lk]. A key-padding mask [N, Lk] must be
      given as ``key_padding_mask(m)``.
    implementation: None (XLA's choice), 'xla', 'cudnn' (GPU, bf16/fp16), 'einsum'
      (``einsum_attention``: head-major einsums and a hand-written backward, for CPU) or
      'splash' (``splash_attention``: the Pallas TPU kernel where its block size divides
      both lengths and the mask is static; XLA's attention for other calls).
    """
    check_attention_implementation(implementation)
    if q.ndim < 4 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"attention wants [N, L, heads, head_dim]; got q {q.shape}, k {k.shape}, v {v.shape}")
    if implementation == "splash":
        if splash_supports(q.shape[-3], k.shape[-3], mask):
            return splash_attention(q, k, v, mask)
        implementation = "xla"  # short sequences, per-example masks
    if q.ndim > 4:
        if mask is not None and jnp.ndim(mask) > 2:
            raise ValueError(f"with several batch axes the mask must be [Lq, Lk], got {jnp.shape(mask)}")
        if implementation != "einsum":  # einsum_attention takes any number of batch axes
            # More than one batch axis ([B, T', S, heads, head_dim] from the DiT): map over the
            # leading one instead of merging it into N. A merge of a sharded axis with another
            # is not a block split, and XLA would gather the whole activation to do it.
            return jax.vmap(lambda q, k, v: attention(q, k, v, mask=mask, implementation=implementation))(q, k, v)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if mask.ndim == 2:    # [Lq, Lk]
            mask = mask[None, None]
        elif mask.ndim == 3:  # [N, Lq, Lk]
            mask = mask[:, None]
        elif mask.ndim != 4:
            raise ValueError(f"attention mask of shape {mask.shape}: want 2, 3 or 4 dims")
    if implementation == "einsum":
        return einsum_attention(q, k, v, mask)
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=implementation)


def key_padding_mask(mask: Array) -> Array:
    """[N, Lk] bool (True = real token) -> [N, 1, 1, Lk] for ``attention``."""
    return jnp.asarray(mask, bool)[:, None, None, :]


# --- position tables ---------------------------------------------------------------

def position_table(fn: Callable) -> Callable:
    """Make a table of fixed positions a constant of the compiled program: computed once
    when traced. Staged instead, XLA fuses its cos/sin into every consumer and recomputes
    them per batch element and head (6% of the benchmark train step). Traced positions
    still stage as usual."""
    @functools.wraps(fn)
    def table(*args, **kwargs):
        with jax.ensure_compile_time_eval():
            return fn(*args, **kwargs)
    return table


# --- rotary position embedding -------------------------------------------------

def default_rope_split(head_dim: int) -> tuple[int, int, int]:
    """(time, y, x) shares of head_dim: y and x get floor(head_dim / 6) pairs each,
    time the rest (head_dim 32 -> (12, 10, 10), 64 -> (24, 20, 20))."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"3D RoPE needs an even head_dim >= 6, got {head_dim}")
    d = 2 * (head_dim // 6)
    return head_dim - 2 * d, d, d


@position_table
def rope_3d(positions: Array, head_dim: int, split: Sequence[int] | None = None,
            base: float = 10.0) -> Rope:
    """cos/sin tables for 3D RoPE.

    positions: [..., L, 3] (t, y, x), ints or floats.
    split: (dt, dy, dx), each even, summing to head_dim; default ``default_rope_split``.
    base: frequency base. Band ``a`` rotates its i-th pair by
      ``pos_a * base ** (-2i / d_a)``; 10 suits grids of ~4-16 positions, raise
      it for longer axes.
    Returns (cos, sin), each [..., L, head_dim // 2]: time pairs first, then y, then x.
    """
    split = tuple(default_rope_split(head_dim) if split is None else split)
    if len(split) != 3 or sum(split) != head_dim or any(d % 2 or d < 0 for d in split):
        raise ValueError(f"rope split {split} must be 3 even sizes summing to head_dim {head_dim}")
    positions = jnp.asarray(positions, jnp.float32)
    if positions.shape[-1] != 3:
        raise ValueError(f"rope_3d positions must end in 3 (t, y, x), got {positions.shape}")
    angles = []
    for axis, d in enumerate(split):
        if d == 0:
            continue
        inv_freq = base ** (-jnp.arange(0, d, 2, dtype=jnp.float32) / d)  # [d/2]
        angles.append(positions[..., axis:axis + 1] * inv_freq)           # [..., L, d/2]
    angle = jnp.concatenate(angles, axis=-1)                              # [..., L, head_dim/2]
    return jnp.cos(angle), jnp.sin(angle)


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
    """Rotate feature pairs (i, i + head_dim/2) of x by the table's angles.

    x: [..., L, heads, head_dim]; cos, sin: [..., L, head_dim/2] (broadcast over
    heads and any leading axes). Computed in float32, returned in x's dtype.
    """
    half = x.shape[-1] // 2
    if cos.shape[-1] != half:
        raise ValueError(f"rope table has {cos.shape[-1]} pairs, x has head_dim {x.shape[-1]}")
    xf = x.astype(jnp.float32)
    x1, x2 = xf[..., :half], xf[..., half:]
    c, s = cos[..., None, :], sin[..., None, :]  # [..., L, 1, head_dim/2]
    out = jnp.concatenate([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1)
    return out.astype(x.dtype)


# --- sin-cos embeddings ------------------------------------------------------------

@position_table
def sincos_1d(positions: Array, dim: int, max_period: float = 10000.0) -> Array:
    """[...] positions -> [..., dim]: [sin(p * w_i), cos(p * w_i)], w_i = max_period^(-i/(dim/2))."""
    if dim % 2:
        raise ValueError(f"sincos_1d needs an even dim, got {dim}")
    omega = 1.0 / max_period ** (jnp.arange(dim // 2, dtype=jnp.float32) / (dim // 2))
    angle = jnp.asarray(positions, jnp.float32)[..., None] * omega
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)


@position_table
def sincos_3d(positions: Array, dim: int) -> Array:
    """Separable 3D sin-cos position embedding, [..., 3] (t, y, x) -> [..., dim].

    The DiT / Latte / STDiT standard: a spatial 2D table (first half of the
    channels encodes y, second half x) plus a temporal 1D table over all
    channels, summed. (Latte and STDiT add the temporal table at the first
    temporal block; adding both at the input is the same sum.) Separate
    channel bands for t / y / x were measured no better (RESEARCH-NOTES.md).
    """
    if dim % 4:
        raise ValueError(f"sincos_3d needs dim divisible by 4, got {dim}")
    positions = jnp.asarray(positions, jnp.float32)
    spatial = jnp.concatenate([sincos_1d(positions[..., 1], dim // 2),
                               sincos_1d(positions[..., 2], dim // 2)], axis=-1)
    return spatial + sincos_1d(positions[..., 0], dim)


def grid_positions(grid: Sequence[int]) -> np.ndarray:
    """(T, H, W) -> [T*H*W, 3] int32 positions (t, y, x), time slowest."""
    t, y, x = np.meshgrid(*(np.arange(n) for n in grid), indexing="ij")
    return np.stack([t, y, x], axis=-1).reshape(-1, 3).astype(np.int32)


# --- attention modules ---------------------------------------------------------------

def _qk_norm(head_dim: int, enabled: bool, dtype, rngs: nnx.Rngs):
    if not enabled:
        return None
    return nnx.RMSNorm(head_dim, scale_init=_part(nnx.initializers.ones_init(), ("head_dim",)),
                       dtype=dtype, rngs=rngs)


class SelfAttention(nnx.Module):
    """Multi-head self-attention with optional RMS q/k-norm and RoPE.

    Parameters: qkv kernel [embed, 3, heads, head_dim] (+ bias), out kernel
    [heads, head_dim, embed] (+ bias), q/k norm scales [head_dim] each:
    4*D^2 + 4*D (+ 2*head_dim with qk_norm) scalars.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, *,
                 attention_impl: str | None = None, dtype=jnp.float32, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        check_attention_implementation(attention_impl)
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.attention_impl = attention_impl
        self.qkv = nnx.LinearGeneral(
            dim, (3, num_heads, self.head_dim), dtype=dtype, rngs=rngs,
            kernel_init=_part(_default_kernel, ("embed", None, "heads", "head_dim")),
            bias_init=_part(_zeros, (None, "heads", "head_dim")))
        self.out = nnx.LinearGeneral(
            (num_heads, self.head_dim), dim, axis=(-2, -1), dtype=dtype, rngs=rngs,
            kernel_init=_part(_default_kernel, ("heads", "head_dim", "embed")),
            bias_init=_part(_zeros, ("embed",)))
        self.q_norm = _qk_norm(self.head_dim, qk_norm, dtype, rngs)
        self.k_norm = _qk_norm(self.head_dim, qk_norm, dtype, rngs)

    def qkv_heads(self, x: Array, rope: Rope | None = None) -> tuple[Array, Array, Array]:
        """x [N, L, D] -> q, k, v [N, L, heads, head_dim] (normed and rotated)."""
        qkv = self.qkv(x)                                  # [N, L, 3, heads, head_dim]
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def __call__(self, x: Array, rope: Rope | None = None, mask: Array | None = None) -> Array:
        """x [..., N, L, D]; rope (cos, sin) [.., L, head_dim/2]; mask as in ``attention``."""
        q, k, v = self.qkv_heads(x, rope)
        o = attention(q, k, v, mask=mask, implementation=self.attention_impl)  # [N, L, heads, hd]
        return self.out(o)                                                    # [N, L, D]


class CrossAttention(nnx.Module):
    """Queries from x [N, Lq, D], keys/values from context tokens [N, Lk, context_dim].

    ``context_mask`` [N, Lk] (True = real token) masks text padding.
    """

    def __init__(self, dim: int, context_dim: int, num_heads: int, qk_norm: bool = True, *,
                 attention_impl: str | None = None, dtype=jnp.float32, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        check_attention_implementation(attention_impl)
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.attention_impl = attention_impl
        self.q = nnx.LinearGeneral(
            dim, (num_heads, self.head_dim), dtype=dtype, rngs=rngs,
            kernel_init=_part(_default_kernel, ("embed", "heads", "head_dim")),
            bias_init=_part(_zeros, ("heads", "head_dim")))
        self.kv = nnx.LinearGeneral(
            context_dim, (2, num_heads, self.head_dim), dtype=dtype, rngs=rngs,
            kernel_init=_part(_default_kernel, ("embed", None, "heads", "head_dim")),
            bias_init=_part(_zeros, (None, "heads", "head_dim")))
        self.out = nnx.LinearGeneral(
            (num_heads, self.head_dim), dim, axis=(-2, -1), dtype=dtype, rngs=rngs,
            kernel_init=_part(_default_kernel, ("heads", "head_dim", "embed")),
            bias_init=_part(_zeros, ("embed",)))
        self.q_norm = _qk_norm(self.head_dim, qk_norm, dtype, rngs)
        self.k_norm = _qk_norm(self.head_dim, qk_norm, dtype, rngs)

    def __call__(self, x: Array, context: Array, context_mask: Array | None = None) -> Array:
        q = self.q(x)                                  # [N, Lq, heads, head_dim]
        kv = self.kv(context.astype(q.dtype))          # [N, Lk, 2, heads, head_dim]
        k, v = kv[..., 0, :, :], kv[..., 1, :, :]
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        mask = None if context_mask is None else key_padding_mask(context_mask)
        o = attention(q, k, v, mask=mask, implementation=self.attention_impl)
        return self.out(o)                             # [N, Lq, D]


class Mlp(nnx.Module):
    """Linear -> GELU (tanh approximation) -> Linear, hidden width dim * ratio."""

    def __init__(self, dim: int, ratio: float = 4.0, *, dtype=jnp.float32, rngs: nnx.Rngs):
        hidden = int(dim * ratio)
        self.fc1 = nnx.Linear(dim, hidden, dtype=dtype, rngs=rngs,
                              kernel_init=_part(_default_kernel, ("embed", "mlp")),
                              bias_init=_part(_zeros, ("mlp",)))
        self.fc2 = nnx.Linear(hidden, dim, dtype=dtype, rngs=rngs,
                              kernel_init=_part(_default_kernel, ("mlp", "embed")),
                              bias_init=_part(_zeros, ("embed",)))

    def __call__(self, x: Array) -> Array:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=True))


# --- adaLN-Zero ----------------------------------------------------------------------

def layer_norm(x: Array, eps: float = 1e-6) -> Array:
    """LayerNorm without affine parameters (adaLN supplies shift and scale), in float32."""
    xf = x.astype(jnp.float32)
    mean = xf.mean(-1, keepdims=True)
    var = jnp.square(xf - mean).mean(-1, keepdims=True)
    return ((xf - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def modulate(x: Array, shift: Array, scale: Array) -> Array:
    """x * (1 + scale) + shift; shift/scale must already broadcast against x."""
    return x * (1 + scale) + shift


class AdaLNModulation(nnx.Module):
    """c [..., cond_dim] -> SiLU -> Linear -> [..., n, dim], initialised to zero.

    Kernel [cond, n, embed]: n * (cond_dim * dim + dim) scalars.
    With zero init every gate starts at 0 and every scale at 1 (adaLN-Zero).
    """

    def __init__(self, cond_dim: int, dim: int, n: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.n = n
        self.proj = nnx.LinearGeneral(
            cond_dim, (n, dim), dtype=dtype, rngs=rngs,
            kernel_init=_part(_zeros, ("cond", None, "embed")),
            bias_init=_part(_zeros, (None, "embed")))

    def __call__(self, c: Array) -> Array:
        return self.proj(jax.nn.silu(c))


def timestep_features(t: Array, dim: int = 256, max_period: float = 10000.0) -> Array:
    """DiT's sinusoidal features of t * 1000 (t in [0, 1]): [B] -> [B, dim] as [cos, sin]."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angle = (jnp.asarray(t, jnp.float32) * 1000.0)[..., None] * freqs
    return jnp.concatenate([jnp.cos(angle), jnp.sin(angle)], axis=-1)


class TimestepEmbedder(nnx.Module):
    """t [B] in [0, 1] -> sinusoidal(t * 1000) -> Linear -> SiLU -> Linear -> [B, dim]."""

    def __init__(self, dim: int, freq_dim: int = 256, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.freq_dim = freq_dim
        init = nnx.initializers.normal(0.02)
        self.fc1 = nnx.Linear(freq_dim, dim, dtype=dtype, rngs=rngs,
                              kernel_init=_part(init, ("cond", "embed")),
                              bias_init=_part(_zeros, ("embed",)))
        self.fc2 = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs,
                              kernel_init=_part(init, ("cond", "embed")),
                              bias_init=_part(_zeros, ("embed",)))

    def __call__(self, t: Array) -> Array:
        return self.fc2(jax.nn.silu(self.fc1(timestep_features(t, self.freq_dim))))
