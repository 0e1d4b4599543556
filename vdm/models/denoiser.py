"""The trained network: a VideoDiT plus the encoders of its conditions.

Routes condition inputs to where they enter the DiT: text ids go through the
jointly trained text encoder; its tokens feed cross-attention and its pooled
vector the (per-frame) adaLN conditioning.
"""
from __future__ import annotations

import jax
from flax import nnx

from vdm.models.dit import VideoDiT
from vdm.models.text import TextEncoder


class Denoiser(nnx.Module):
    def __init__(self, dit: VideoDiT, text_encoder: TextEncoder | None = None):
        self.dit = dit
        self.text_encoder = text_encoder

    def __call__(self, x: jax.Array, t: jax.Array, *, text_ids: jax.Array | None = None,
                 text_mask: jax.Array | None = None) -> jax.Array:
        context = context_mask = cond = None
        if text_ids is not None:
            if self.text_encoder is None:
                raise ValueError("text inputs given, but this model has no text condition")
            context, cond = self.text_encoder(text_ids, text_mask)
            context_mask = text_mask
            if self.dit.context_dim is None:  # pooled text only (adaLN)
                context = context_mask = None
        return self.dit(x, t, cond=cond, context=context, context_mask=context_mask)
