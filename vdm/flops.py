"""Analytic FLOPs of the model: per forward pass, per train step, per sampled clip.

Counted: every matrix multiply, at 2 FLOPs per multiply-add: the linear
layers (projections, MLPs, adaLN modulation, embeddings, the text encoder)
and the attention core (q k^T and p v). Not counted: elementwise work
(LayerNorm, GELU, softmax, RoPE, residual adds, the optimizer), which costs
memory bandwidth rather than matmul throughput. MFU divides these counts by
the peak matmul rate, the usual convention (PaLM appendix B), so a model
spending its time on elementwise work shows a low MFU, which is the point.

Masked attention (a temporal window) is counted dense: XLA computes the full
score matrix and masks it.

Training = forward + backward, the backward being two matmuls per forward
matmul (gradient w.r.t. input and w.r.t. weights), except where the input
needs no gradient (the patch embedding reads data; the timestep MLP reads
fixed sinusoids): there only the weight gradient. Remat adds the recompute:
'full' reruns every block's forward; 'dots' keeps the outputs of matmuls
without batch dimensions (the linear layers) and reruns the attention core.

The dimensions are read from the (possibly abstract) model, so the count
follows whatever the config built.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

from vdm.models.denoiser import Denoiser
from vdm.models.dit import VideoDiT
from vdm.models.text import TextEncoder


def _first_block(dit: VideoDiT):
    return dit.block_stacks[0] if dit.scan_layers else dit.blocks[0]


def _block_mixers(dit: VideoDiT) -> list[tuple[str, ...]]:
    if dit.scan_layers:
        pattern = [s.mixers for s in dit.block_stacks]
        return [pattern[i % len(pattern)] for i in range(dit.depth)]
    return [b.mixers for b in dit.blocks]


def dit_forward_flops(dit: VideoDiT, batch: int, clip: Sequence[int],
                      context_len: int = 0) -> dict[str, float]:
    """Matmul FLOPs of one VideoDiT forward pass, by part.

    clip: (T, H, W) of the input; context_len: text tokens (cross-attention).
    Parts: 'embed' (patch embedding, conditioning MLPs), 'modulation' (adaLN),
    'qkv_out' (self-attention projections), 'attention' (self-attention core),
    'cross' (cross-attention projections and core), 'mlp', 'final'.
    """
    pt, ph, pw = dit.patch_size
    T, H, W = clip
    frames, space = T // pt, (H // ph) * (W // pw)
    tokens = batch * frames * space                         # N: video tokens in the batch
    D = dit.hidden
    per_frame = batch * frames                              # rows of the per-frame adaLN vectors
    patch = pt * ph * pw
    block = _first_block(dit)
    mlp_hidden = block.mlp.fc1.out_features
    has_cross = dit.context_dim is not None and context_len > 0
    seq_len = {"space": space, "time": frames, "joint": frames * space}

    out = dict.fromkeys(("embed", "modulation", "qkv_out", "attention", "cross", "mlp", "final"), 0.0)
    out["embed"] += 2 * tokens * patch * (dit.in_channels + dit.concat_channels) * D
    out["embed"] += 2 * batch * (dit.t_embed.freq_dim * D + D * D)
    if dit.cond_dim:
        out["embed"] += 2 * batch * dit.cond_dim * D                      # cond_proj
    if dit.frame_cond is not None:
        fc = dit.frame_cond
        if fc.form == "bilinear":                                         # [B, r] then [B*T', r*r] @ [r*r, D]
            out["embed"] += 2 * batch * dit.cond_dim * fc.rank + 2 * per_frame * fc.rank ** 2 * D
        else:
            rows = per_frame if fc.cond_proj is not None else frames     # [B or 1, T', .]
            if fc.cond_proj is not None:
                out["embed"] += 2 * batch * dit.cond_dim * D
            out["embed"] += 2 * rows * (fc.fc1.in_features * D + D * D)
    for mixers in _block_mixers(dit):
        sublayers = len(mixers) + has_cross + 1
        out["modulation"] += 2 * per_frame * D * 3 * sublayers * D
        for kind in mixers:
            out["qkv_out"] += 2 * tokens * D * 4 * D                      # q, k, v and out
            out["attention"] += 2 * 2 * tokens * seq_len[kind] * D        # q k^T and p v
        if has_cross:
            out["cross"] += 2 * tokens * D * 2 * D                        # q and out
            out["cross"] += 2 * batch * context_len * dit.context_dim * 2 * D   # k, v
            out["cross"] += 2 * 2 * tokens * context_len * D
        out["mlp"] += 2 * 2 * tokens * D * mlp_hidden
    out["final"] = 2 * per_frame * D * 2 * D + 2 * tokens * D * dit.final.linear.out_features
    if dit.out_conv is not None:                                          # [pixels, 9F] @ [9F, C]
        head = dit.out_conv.linear
        out["final"] += 2 * batch * T * H * W * head.in_features * head.out_features
    return out


def text_forward_flops(encoder: TextEncoder, batch: int, length: int) -> float:
    """Matmul FLOPs of the text encoder over ``length`` tokens (the embedding is a gather)."""
    W = encoder.width
    rows = batch * length
    total = 0.0
    for block in encoder.blocks:
        mlp_hidden = block.mlp.fc1.out_features
        total += 2 * rows * W * 4 * W + 2 * 2 * rows * length * W + 2 * 2 * rows * W * mlp_hidden
    return total


def forward_flops(model: Denoiser, batch: int, clip: Sequence[int], text_len: int = 0) -> float:
    """Matmul FLOPs of one Denoiser call (text encoder included when it has one)."""
    total = sum(dit_forward_flops(model.dit, batch, clip, text_len).values())
    if model.text_encoder is not None and text_len:
        total += text_forward_flops(model.text_encoder, batch, text_len)
    return total


def train_step_flops(model: Denoiser, batch: int, clip: Sequence[int], text_len: int = 0) -> float:
    """Matmul FLOPs of one train step: forward, backward, and the remat recompute."""
    dit = model.dit
    parts = dit_forward_flops(dit, batch, clip, text_len)
    forward = forward_flops(model, batch, clip, text_len)
    # layers whose input needs no gradient: the backward computes only the weight gradient
    pt, ph, pw = dit.patch_size
    tokens = batch * math.prod(clip) // (pt * ph * pw)
    no_input_grad = 2 * tokens * pt * ph * pw * (dit.in_channels + dit.concat_channels) * dit.hidden
    no_input_grad += 2 * batch * dit.t_embed.freq_dim * dit.hidden
    if dit.frame_cond is not None and dit.frame_cond.cond_proj is None:
        no_input_grad += 2 * (clip[0] // pt) * dit.hidden * dit.hidden
    total = 3 * forward - no_input_grad
    blocks = sum(v for k, v in parts.items() if k not in ("embed", "final"))
    if dit.remat == "full":
        total += blocks
    elif dit.remat == "dots":
        total += parts["attention"] + _cross_core(dit, batch, clip, text_len)
    return total


def _cross_core(dit: VideoDiT, batch: int, clip: Sequence[int], text_len: int) -> float:
    if dit.context_dim is None or not text_len:
        return 0.0
    pt, ph, pw = dit.patch_size
    tokens = batch * math.prod(clip) // (pt * ph * pw)
    return dit.depth * 2 * 2 * tokens * text_len * dit.hidden


def sampler_model_calls(sampler: str, steps: int) -> int:
    """Model evaluations of one sampling run (Heun's last step is plain Euler)."""
    return 2 * steps - 1 if sampler == "heun" else steps


def sample_flops_per_clip(model: Denoiser, clip: Sequence[int], *, sampler: str, steps: int,
                          guidance_variants: int = 1, text_len: int = 0) -> float:
    """Matmul FLOPs to sample one clip: every model call, times the guidance variants
    (2 for classifier-free guidance: conditional and unconditional in one batch)."""
    return sampler_model_calls(sampler, steps) * guidance_variants * forward_flops(
        model, 1, clip, text_len)


def tokens_per_clip(dit: VideoDiT, clip: Sequence[int]) -> int:
    pt, ph, pw = dit.patch_size
    return math.prod(clip) // (pt * ph * pw)


# --- what a compiled program asks for -------------------------------------------------

_DOT = re.compile(r"stablehlo\.dot_general .*contracting_dims = \[([\d, ]*)\] x .*"
                  r": \(tensor<([\dx]*)x?[a-z]\w*>, .*-> tensor<([\dx]*)x?[a-z]\w*>")


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split("x") if d]


def lowered_matmul_flops(stablehlo_text: str) -> float:
    """Matmul FLOPs written in a lowered program (``jax.jit(f).lower(...).as_text()``):
    2 * output size * contracted size for every ``dot_general``. A loop body (scan)
    counts once, as it is written once."""
    total = 0.0
    for line in stablehlo_text.splitlines():
        m = _DOT.search(line)
        if m:
            contracting = [int(d) for d in m.group(1).replace(" ", "").split(",") if d]
            lhs, out = _dims(m.group(2)), _dims(m.group(3))
            total += 2 * math.prod(out) * math.prod(lhs[d] for d in contracting)
    return total
