"""VideoDiT: tubelet patchify -> space-time transformer blocks -> unpatchify.

Shapes (B batch, T/H/W clip size, T'/H'/W' patch grid, S = H'*W', D hidden):

    x [B, T, H, W, C] (+ concat channels)
      -> patchify            [B, T', S, pt*ph*pw*C]
      -> linear              [B, T', S, D]    (+ fixed sin-cos positions)
      -> blocks              [B, T', S, D]    (adaLN-Zero from per-frame c_f [B, T', D])
      -> final adaLN + linear [B, T', S, pt*ph*pw*out]
      -> unpatchify          [B, T, H, W, out]
      (out_conv = F: linear to pt*ph*pw*F, unpatchify [B, T, H, W, F], 3x3 conv -> out)

Factorized attention is a reshape, not a new model: blocks see [B, T', S, D];
spatial attention runs over S with B*T' as batch, temporal attention over T'
with B*S as batch, joint attention over all T'*S tokens.

Layouts (``depth`` = number of blocks; every block ends with cross-attention
to the text context, when there is one, and an MLP):

- ``sequential``  (STDiT): spatial attn -> temporal attn -> cross -> MLP.
- ``interleaved`` (Latte): even blocks spatial attn, odd blocks temporal attn.
- ``joint``       full 3D attention over T'*S tokens.

Joint and interleaved have exactly the same parameters (one self-attention
per block). Sequential has one more self-attention per block, plus the
adaLN modulation rows of that sublayer (shift, scale, gate):

    sequential - joint = depth * (4 D^2 + 4 D + 2 head_dim  +  3 D^2 + 3 D)
                                  self-attention (qk-norm)    adaLN share

``temporal_window=w`` restricts attention in time to |t_i - t_j| <= w
(temporal attention, and the time component of joint attention).

Positions (``pos_embed``): 'sincos' adds the separable sin-cos table after
the patch embedding; 'rope' rotates q and k of every self-attention by 3D
RoPE on the token's (t', y', x'); 'both' (default) does both, the recipe
that made small models coherent (RESEARCH-NOTES.md); 'none' is a control.
Nothing positional is learned, so other clip lengths and resolutions (any
size the patch divides) run through the same weights.

Conditioning: c = TimestepEmbedder(t) + Linear(cond). Every adaLN modulation
is computed from a per-FRAME vector c_f [B, T', D] = c + FrameCond(cond,
frame index) (``frame_cond=True``), so the condition can modulate each frame
differently: the general form of the (label, frame) embedding that RESEARCH-
NOTES found necessary for the direction of motion. FrameCond's output layer
is zero-initialised, so at init c_f is c on every frame.

Cross-attention (``context_dim``): every block reads the text tokens with
queries from all T'*S video tokens. It is a residual branch gated by its own
adaLN-Zero (shift, scale, gate) like the other sublayers, so it starts
closed and its gate can differ per frame.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vdm import sharding
from vdm.models.layers import (
    AdaLNModulation, CrossAttention, Mlp, SelfAttention, TimestepEmbedder, default_rope_split,
    grid_positions, layer_norm, modulate, param_count, position_table, rope_3d, sincos_1d, sincos_3d)
from vdm.models.stacking import check_remat, run_scanned, run_unrolled, stacked

__all__ = [
    "VideoDiT", "ConvHead", "FrameCond", "Block", "patchify", "unpatchify", "param_count",
    "attend_space", "attend_time", "attend_joint", "LAYOUTS", "POS_EMBEDS", "layout_period",
]

Array = jax.Array
LAYOUTS = ("sequential", "interleaved", "joint")
POS_EMBEDS = ("both", "sincos", "rope", "none")
ACT = ("act_batch", "act_frames", "act_space", "act_embed")      # [B, T', S, D]
ACT_TOKENS = ("act_batch", "act_tokens", "act_embed")           # [B, T'*S, D]

_zeros = nnx.initializers.zeros_init()


def _part(init, names):
    return nnx.with_partitioning(init, tuple(names))


# --- tubelets ------------------------------------------------------------------------

def _check_patch(size: Sequence[int], patch: Sequence[int]) -> None:
    if len(size) != 3 or len(patch) != 3:
        raise ValueError(f"size {tuple(size)} and patch {tuple(patch)} must both be (T, H, W)")
    bad = [f"{name}={n} % {pname}={p} != 0"
           for name, pname, n, p in zip("THW", ("pt", "ph", "pw"), size, patch)
           if p <= 0 or n % p]
    if bad:
        raise ValueError(f"patch {tuple(patch)} does not divide input (T, H, W) = "
                         f"{tuple(size)}: " + ", ".join(bad))


def patchify(x: Array, patch: Sequence[int]) -> Array:
    """[B, T, H, W, C] -> [B, T', H'*W', pt*ph*pw*C] non-overlapping tubelets.

    Within a tubelet, features are ordered (pt, ph, pw, C); tokens of a frame
    are in raster order (y' slow, x' fast).
    """
    B, T, H, W, C = x.shape
    pt, ph, pw = patch
    _check_patch((T, H, W), patch)
    Tp, Hp, Wp = T // pt, H // ph, W // pw
    x = x.reshape(B, Tp, pt, Hp, ph, Wp, pw, C)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)           # [B, T', H', W', pt, ph, pw, C]
    return x.reshape(B, Tp, Hp * Wp, pt * ph * pw * C)


def unpatchify(tokens: Array, patch: Sequence[int], size: Sequence[int]) -> Array:
    """[B, T', H'*W', pt*ph*pw*C] -> [B, T, H, W, C]; the exact inverse of ``patchify``.

    size: the clip's (T, H, W).
    """
    _check_patch(size, patch)
    B, Tp, S, P = tokens.shape
    pt, ph, pw = patch
    T, H, W = size
    Hp, Wp = H // ph, W // pw
    if (Tp, S) != (T // pt, Hp * Wp) or P % (pt * ph * pw):
        raise ValueError(f"tokens {tokens.shape} do not match size {tuple(size)} with patch "
                         f"{tuple(patch)}")
    C = P // (pt * ph * pw)
    x = tokens.reshape(B, Tp, Hp, Wp, pt, ph, pw, C)
    x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)           # [B, T', pt, H', ph, W', pw, C]
    return x.reshape(B, T, H, W, C)


# --- attention over one axis of [B, T', S, D] ------------------------------------------

def attend_space(attn: SelfAttention, x: Array, rope=None, mask=None) -> Array:
    """Attention within each frame: over S, with B*T' as batch. [B, T', S, D] -> same."""
    # No reshape to [B*T', S, D]: merging the batch and the frame axis (both sharded under
    # sequence parallel) would make XLA gather the activation; attention maps over both.
    return attn(x, rope=rope, mask=mask)                      # [B, T', S, D]


def attend_time(attn: SelfAttention, x: Array, rope=None, mask=None) -> Array:
    """Attention along each time line: over T', with B*S as batch. [B, T', S, D] -> same.

    Under the 'temporal' rule set frames are whole and space is split over the
    'sequence' mesh axis, so entering and leaving is an all-to-all.
    """
    with sharding.rules("temporal"):
        x = sharding.constrain(x, ACT)
        h = attn(x.transpose(0, 2, 1, 3), rope=rope, mask=mask)   # [B, S, T', D]
        h = sharding.constrain(h.transpose(0, 2, 1, 3), ACT)      # [B, T', S, D]
    return h


def attend_joint(attn: SelfAttention, x: Array, rope=None, mask=None) -> Array:
    """Full 3D attention over all T'*S tokens. [B, T', S, D] -> same.

    Under sequence parallel the tokens stay split over 'sequence' (merging T' with
    the unsplit S is a block split) and so do the queries; XLA all-gathers keys and
    values, [B, T'*S, heads, head_dim], per block: per-device memory O(T'*S) for K/V
    and scores of [T'*S / n, T'*S]. (A ring attention would keep K/V split too.)
    """
    B, T, S, D = x.shape
    h = sharding.constrain(x.reshape(B, T * S, D), ACT_TOKENS)   # [B, T'*S, D]
    h = attn(h, rope=rope, mask=mask)
    return h.reshape(B, T, S, D)


ATTEND = {"space": attend_space, "time": attend_time, "joint": attend_joint}


def layout_period(layout: str) -> int:
    """Blocks in the layout's repeating pattern (the scan body of ``scan_layers``)."""
    return 2 if layout == "interleaved" else 1


def _mixers(layout: str, index: int) -> tuple[str, ...]:
    """Self-attention sublayers of block ``index`` under ``layout``."""
    if layout == "sequential":
        return ("space", "time")
    if layout == "interleaved":
        return ("space",) if index % 2 == 0 else ("time",)
    return ("joint",)


# --- modules -------------------------------------------------------------------------

FRAME_COND_FORMS = ("mlp", "bilinear")


@position_table
def frame_fourier(num_frames: int, dim: int) -> Array:
    """[T', dim] sin/cos of frame f at the frequencies pi * k / (dim/2 + 1), k = 1..dim/2.

    Evenly spaced frequencies up to ~pi make the rows of the first ``dim`` frames linearly
    independent and well conditioned (condition number 1.1 at 8 frames and 4.1 at 32 for
    dim 32), so a linear map of them can give every frame its own vector. The geometric
    sin-cos ladder of position embeddings cannot: its slow channels barely change over a
    clip (rank 7 of 8 frames at dim 32).
    """
    k = jnp.arange(1, dim // 2 + 1, dtype=jnp.float32)
    angle = jnp.arange(num_frames, dtype=jnp.float32)[:, None] * (jnp.pi * k / (dim // 2 + 1))
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)


class FrameCond(nnx.Module):
    """Per-frame conditioning offset [B, T', D] from the condition and the frame index.

    form 'mlp':      MLP(concat(Linear(cond), sincos_1d(frame))). Without ``cond_dim``
                     the input is the frame embedding alone (a learned per-frame bias).
    form 'bilinear': sum_{r,s} Linear(cond)_r * frame_fourier(frame)_s * W[r, s, :], rank
                     ``rank``: the general form of a (label, frame) embedding table, which
                     RESEARCH-NOTES found to teach direction of motion. With one-hot labels
                     it can hold any such table for clips of up to ``rank`` frames (the
                     frame features are independent there). Needs ``cond_dim``.
    The output layer (fc2 / W) is zero-initialised: at init the offset is 0.
    """

    def __init__(self, dim: int, cond_dim: int | None = None, *, form: str = "mlp",
                 rank: int = 32, dtype=jnp.float32, rngs: nnx.Rngs):
        if form not in FRAME_COND_FORMS:
            raise ValueError(f"frame_cond form {form!r} is not one of {FRAME_COND_FORMS}")
        if form == "bilinear" and not cond_dim:
            raise ValueError("the bilinear frame_cond form needs a condition (cond_dim)")
        if rank % 2:
            raise ValueError(f"frame_cond rank must be even (sin-cos pairs), got {rank}")
        self.dim, self.form, self.rank = dim, form, rank
        init = nnx.initializers.lecun_normal()
        out_dim = rank if form == "bilinear" else dim
        self.cond_proj = None if not cond_dim else nnx.Linear(
            cond_dim, out_dim, dtype=dtype, rngs=rngs, kernel_init=_part(init, ("cond", "embed")),
            bias_init=_part(_zeros, ("embed",)))
        if form == "bilinear":
            self.fc1 = self.fc2 = None
            self.table = nnx.Param(_part(_zeros, ("cond", "embed"))(
                rngs.params(), (rank * rank, dim), jnp.float32))       # W[r, s, :] as [r*s, D]
            return
        self.table = None
        self.fc1 = nnx.Linear(2 * dim if cond_dim else dim, dim, dtype=dtype, rngs=rngs,
                              kernel_init=_part(init, ("cond", "embed")),
                              bias_init=_part(_zeros, ("embed",)))
        self.fc2 = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs,
                              kernel_init=_part(_zeros, ("cond", "embed")),
                              bias_init=_part(_zeros, ("embed",)))

    def __call__(self, num_frames: int, cond: Array | None = None) -> Array:
        if self.form == "bilinear":
            a = self.cond_proj(cond)                                 # [B, r]
            phi = frame_fourier(num_frames, self.rank).astype(a.dtype)  # [T', r]
            outer = a[:, None, :, None] * phi[None, :, None, :]      # [B, T', r, r]
            outer = outer.reshape(a.shape[0], num_frames, self.rank * self.rank)
            return outer @ self.table.value.astype(a.dtype)          # [B, T', D]
        f = sincos_1d(np.arange(num_frames), self.dim)[None]  # [1, T', D]
        if self.cond_proj is not None:
            p = self.cond_proj(cond)[:, None]                    # [B, 1, D]
            shape = (p.shape[0], num_frames, self.dim)
            f = jnp.concatenate([jnp.broadcast_to(p, shape),
                                 jnp.broadcast_to(f, shape).astype(p.dtype)], axis=-1)
        return self.fc2(jax.nn.silu(self.fc1(f)))                # [B or 1, T', D]


class Block(nnx.Module):
    """Self-attention sublayers (``mixers``) -> cross-attention -> MLP, each adaLN-Zero.

    mixers: a tuple of 'space' / 'time' / 'joint'. One modulation projection
    gives (shift, scale, gate) for every sublayer, per frame.
    """

    def __init__(self, dim: int, num_heads: int, mixers: Sequence[str], *, mlp_ratio: float,
                 context_dim: int | None, attention_impl: str | None, dtype, rngs: nnx.Rngs):
        self.mixers = tuple(mixers)
        self.attn = nnx.List([
            SelfAttention(dim, num_heads, attention_impl=attention_impl, dtype=dtype, rngs=rngs)
            for _ in self.mixers])
        self.cross = None if not context_dim else CrossAttention(
            dim, context_dim, num_heads, attention_impl=attention_impl, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(dim, mlp_ratio, dtype=dtype, rngs=rngs)
        self.num_sublayers = len(self.mixers) + (self.cross is not None) + 1
        self.modulation = AdaLNModulation(dim, dim, 3 * self.num_sublayers, dtype=dtype, rngs=rngs)

    def __call__(self, x: Array, c: Array, *, ropes: dict, masks: dict,
                 context: Array | None = None, context_mask: Array | None = None) -> Array:
        """x [B, T', S, D]; c [B, T', D] per-frame conditioning."""
        mods = self.modulation(c)                                # [B, T', 3n, D]

        def shift_scale_gate(i):                                 # each [B, T', 1, D]
            return tuple(mods[:, :, 3 * i + j, None, :] for j in range(3))

        for i, (kind, attn) in enumerate(zip(self.mixers, self.attn)):
            shift, scale, gate = shift_scale_gate(i)
            h = modulate(layer_norm(x), shift, scale)
            h = ATTEND[kind](attn, h, rope=ropes.get(kind), mask=masks.get(kind))
            x = sharding.constrain(x + gate * h, ACT)
        i = len(self.mixers)
        if self.cross is not None:
            shift, scale, gate = shift_scale_gate(i)
            B, T, S, D = x.shape
            h = modulate(layer_norm(x), shift, scale).reshape(B, T * S, D)
            h = self.cross(sharding.constrain(h, ACT_TOKENS), context, context_mask)
            x = sharding.constrain(x + gate * h.reshape(B, T, S, D), ACT)
            i += 1
        shift, scale, gate = shift_scale_gate(i)
        x = x + gate * self.mlp(modulate(layer_norm(x), shift, scale))
        return sharding.constrain(x, ACT)


class FinalLayer(nnx.Module):
    """adaLN-modulated LayerNorm -> Linear to tubelet features (zero-initialised)."""

    def __init__(self, dim: int, out_features: int, *, dtype, rngs: nnx.Rngs):
        self.modulation = AdaLNModulation(dim, dim, 2, dtype=dtype, rngs=rngs)
        self.linear = nnx.Linear(dim, out_features, dtype=dtype, rngs=rngs,
                                 kernel_init=_part(_zeros, ("embed", "patch")),
                                 bias_init=_part(_zeros, ("patch",)))

    def __call__(self, x: Array, c: Array) -> Array:
        mods = self.modulation(c)                                # [B, T', 2, D]
        shift, scale = mods[:, :, 0, None, :], mods[:, :, 1, None, :]
        return self.linear(modulate(layer_norm(x), shift, scale))


class ConvHead(nnx.Module):
    """3x3 convolution within each frame, features -> output channels, after unpatchify.

    With a plain linear unpatchify each pixel is decided by its own token alone, so the
    edge of an object that crosses a patch border is drawn by two tokens that need not
    agree (U-ViT puts a 3x3 conv here for the same reason). Written as 9 shifted copies
    and one matmul (im2col): the FLOP count stays a dot_general like every other layer.
    """

    def __init__(self, features: int, out_channels: int, *, dtype, rngs: nnx.Rngs):
        self.linear = nnx.Linear(9 * features, out_channels, dtype=dtype, rngs=rngs,
                                 kernel_init=_part(nnx.initializers.lecun_normal(), ("patch", None)),
                                 bias_init=_part(_zeros, (None,)))

    def __call__(self, x: Array) -> Array:
        B, T, H, W, F = x.shape
        padded = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)))  # zeros outside the frame
        views = [padded[:, :, dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)]
        return self.linear(jnp.concatenate(views, axis=-1))          # [B, T, H, W, 9F] -> [.., C]


class VideoDiT(nnx.Module):
    """Diffusion transformer over video clips; see the module docstring.

    input_size: the training clip (T, H, W); any size the patch divides runs.
    dtype: compute dtype of the linear layers (parameters stay float32).
    scan_layers: blocks as ``layout_period`` stacks run by one ``lax.scan`` (compile time
      flat in depth; parameters under ``block_stacks`` with a leading 'layers' axis)
      instead of the list ``blocks``.
    remat: 'none' | 'dots' | 'full', what each block recomputes in the backward pass.
    out_conv: 0 (default) unpatchifies the final linear's output; F > 0 unpatchifies F
      features per pixel and maps them to the output by a 3x3 conv within each frame
      (``ConvHead``).
    """

    def __init__(self, *, input_size: Sequence[int], in_channels: int, out_channels: int,
                 patch_size: Sequence[int], hidden: int, depth: int, num_heads: int,
                 mlp_ratio: float = 4.0, layout: str = "sequential",
                 temporal_window: int | None = None, pos_embed: str = "both",
                 rope_base: float = 10.0, cond_dim: int | None = None,
                 context_dim: int | None = None, frame_cond: bool = True,
                 frame_cond_form: str = "mlp",
                 concat_channels: int = 0, attention_impl: str | None = None,
                 dtype=jnp.float32, scan_layers: bool = False, remat: str = "none",
                 out_conv: int = 0, rngs: nnx.Rngs):
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
        if pos_embed not in POS_EMBEDS:
            raise ValueError(f"pos_embed {pos_embed!r} is not one of {POS_EMBEDS}")
        _check_patch(input_size, patch_size)
        if hidden % num_heads:
            raise ValueError(f"hidden {hidden} is not divisible by num_heads {num_heads}")
        if temporal_window is not None and temporal_window < 0:
            raise ValueError(f"temporal_window must be None or >= 0, got {temporal_window}")
        check_remat(remat)
        if scan_layers and depth % layout_period(layout):
            raise ValueError(f"scan_layers with layout {layout!r} needs depth divisible by "
                             f"{layout_period(layout)}, got {depth}")
        if out_conv < 0:
            raise ValueError(f"out_conv must be 0 (off) or a number of features, got {out_conv}")
        if pos_embed in ("both", "sincos") and hidden % 4:
            raise ValueError(f"sin-cos positions need hidden divisible by 4, got {hidden}")
        self.input_size = tuple(int(n) for n in input_size)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.concat_channels = concat_channels
        self.hidden, self.depth, self.num_heads = hidden, depth, num_heads
        self.head_dim = hidden // num_heads
        self.layout, self.temporal_window = layout, temporal_window
        self.pos_embed, self.rope_base = pos_embed, float(rope_base)
        self.cond_dim, self.context_dim = cond_dim, context_dim
        if pos_embed in ("both", "rope"):
            default_rope_split(self.head_dim)                    # validates head_dim early

        patch_features = int(np.prod(self.patch_size))
        self.patch_embed = nnx.Linear(
            patch_features * (in_channels + concat_channels), hidden, dtype=dtype, rngs=rngs,
            kernel_init=_part(nnx.initializers.lecun_normal(), ("patch", "embed")),
            bias_init=_part(_zeros, ("embed",)))
        self.t_embed = TimestepEmbedder(hidden, dtype=dtype, rngs=rngs)
        self.cond_proj = None if not cond_dim else nnx.Linear(
            cond_dim, hidden, dtype=dtype, rngs=rngs,
            kernel_init=_part(nnx.initializers.lecun_normal(), ("cond", "embed")),
            bias_init=_part(_zeros, ("embed",)))
        self.frame_cond = FrameCond(hidden, cond_dim, form=frame_cond_form, dtype=dtype,
                                    rngs=rngs) if frame_cond else None
        self.scan_layers, self.remat = scan_layers, remat

        def block(i, rngs):
            return Block(hidden, num_heads, _mixers(layout, i), mlp_ratio=mlp_ratio,
                         context_dim=context_dim, attention_impl=attention_impl, dtype=dtype,
                         rngs=rngs)

        period = layout_period(layout)
        if scan_layers:
            self.block_stacks = nnx.List([stacked(lambda r, p=p: block(p, r), depth // period, rngs)
                                          for p in range(period)])
        else:
            self.blocks = nnx.List([block(i, rngs) for i in range(depth)])
        self.final = FinalLayer(hidden, patch_features * (out_conv or out_channels), dtype=dtype, rngs=rngs)
        self.out_conv = ConvHead(out_conv, out_channels, dtype=dtype, rngs=rngs) if out_conv else None

    # -- pieces, public for probes and tests --

    def conditioning(self, t: Array, cond: Array | None, num_frames: int) -> Array:
        """Per-frame conditioning c_f [B, T', D] from t [B] (or per frame [B, T']) and
        cond [B, cond_dim]."""
        c = self.t_embed(t.reshape(-1)).reshape(t.shape + (-1,))  # [B, D] or [B, T', D]
        if c.ndim == 2:
            c = c[:, None]                                        # [B, 1, D]
        if self.cond_proj is not None:
            c = c + self.cond_proj(cond)[:, None]
        c_f = jnp.broadcast_to(c, (c.shape[0], num_frames, c.shape[-1]))
        if self.frame_cond is not None:
            c_f = c_f + self.frame_cond(num_frames, cond)
        return c_f

    def rope_tables(self, grid: Sequence[int]) -> dict:
        """cos/sin per attention kind for a (T', H', W') token grid.

        Spatial attention gets the (0, y, x) table [S, .] and temporal the
        (t, 0, 0) table [T', .]: q.k under RoPE depends only on the position
        difference, which within a frame has no time part and along a time
        line no spatial part, so these equal the full 3D table there.
        """
        if self.pos_embed not in ("both", "rope"):
            return {}
        T, H, W = grid
        full = grid_positions(grid)                              # [T'*S, 3]
        space = full[:H * W]                                     # [S, 3]: frame 0, (0, y, x)
        time = grid_positions((T, 1, 1))                         # [T', 3]: (t, 0, 0)
        table = lambda p: rope_3d(p, self.head_dim, base=self.rope_base)
        return {"space": table(space), "time": table(time), "joint": table(full)}

    def attention_masks(self, grid: Sequence[int]) -> dict:
        """Band masks |t_i - t_j| <= temporal_window for temporal and joint attention."""
        if self.temporal_window is None:
            return {}
        T, H, W = grid
        t = np.arange(T)
        band = np.abs(t[:, None] - t[None, :]) <= self.temporal_window       # [T', T']
        tok_t = np.repeat(t, H * W)                                          # [T'*S]
        joint = np.abs(tok_t[:, None] - tok_t[None, :]) <= self.temporal_window
        return {"time": band, "joint": joint}  # numpy: static, as splash attention needs

    def __call__(self, x: Array, t: Array, *, cond: Array | None = None,
                 context: Array | None = None, context_mask: Array | None = None,
                 concat: Array | None = None) -> Array:
        """x [B, T, H, W, in_channels], t in [0, 1] -> [B, T, H, W, out_channels].

        t: [B] (or a scalar), one noise level per clip, or [B, T], one per frame (e.g. given
        frames clean at t = 0 among noisy ones); a tubelet of pt frames takes the highest
        noise level among its frames.
        """
        if x.ndim != 5 or x.shape[-1] != self.in_channels:
            raise ValueError(f"x must be [B, T, H, W, {self.in_channels}], got {x.shape}")
        B, T, H, W, _ = x.shape
        self._check_inputs(x, cond, context, context_mask, concat)
        pt, ph, pw = self.patch_size
        grid = (T // pt, H // ph, W // pw)
        t = jnp.asarray(t, jnp.float32)
        if t.ndim == 2:
            if t.shape != (B, T):
                raise ValueError(f"per-frame t must be [B, T] = {(B, T)}, got {t.shape}")
            t = t.reshape(B, grid[0], pt).max(-1)                  # [B, T']
        else:
            t = jnp.broadcast_to(t, (B,))
        if self.concat_channels:
            x = jnp.concatenate([x, concat.astype(x.dtype)], axis=-1)

        h = self.patch_embed(patchify(x, self.patch_size))        # [B, T', S, D]
        if self.pos_embed in ("both", "sincos"):
            pos = sincos_3d(grid_positions(grid), self.hidden)      # [T'*S, D], a constant
            h = h + pos.reshape(grid[0], grid[1] * grid[2], self.hidden).astype(h.dtype)
        h = sharding.constrain(h, ACT)
        c = self.conditioning(t, cond, grid[0])                   # [B, T', D]
        if context is not None:
            context = sharding.constrain(context, ("act_batch", "act_context", "act_embed"))
        ropes, masks = self.rope_tables(grid), self.attention_masks(grid)

        def apply(block, h):
            return block(h, c, ropes=ropes, masks=masks, context=context, context_mask=context_mask)

        if self.scan_layers:
            h = run_scanned(self.block_stacks, h, apply, self.remat)
        else:
            h = run_unrolled(self.blocks, h, apply, self.remat)
        out = self.final(h, c)                                    # [B, T', S, pt*ph*pw*(F or out)]
        out = unpatchify(out, self.patch_size, (T, H, W))         # [B, T, H, W, F or out]
        if self.out_conv is not None:
            out = self.out_conv(out)                              # [B, T, H, W, out]
        return out.astype(x.dtype)

    def _check_inputs(self, x, cond, context, context_mask, concat):
        B, T, H, W, _ = x.shape
        if self.cond_dim and (cond is None or cond.shape != (B, self.cond_dim)):
            raise ValueError(f"cond must be [B, {self.cond_dim}] = {(B, self.cond_dim)}, got "
                             f"{None if cond is None else cond.shape}")
        if not self.cond_dim and cond is not None:
            raise ValueError("cond given but the model was built with cond_dim=None")
        if self.context_dim and (context is None or context.ndim != 3
                                 or context.shape[0] != B or context.shape[2] != self.context_dim):
            raise ValueError(f"context must be [B, L, {self.context_dim}] with B={B}, got "
                             f"{None if context is None else context.shape}")
        if not self.context_dim and context is not None:
            raise ValueError("context given but the model was built with context_dim=None")
        if context_mask is not None and (context is None or context_mask.shape != context.shape[:2]):
            raise ValueError(f"context_mask {context_mask.shape} must be [B, L] of context")
        want = (B, T, H, W, self.concat_channels)
        if self.concat_channels and (concat is None or concat.shape != want):
            raise ValueError(f"concat must be {want}, got {None if concat is None else concat.shape}")
        if not self.concat_channels and concat is not None:
            raise ValueError("concat given but the model was built with concat_channels=0")
