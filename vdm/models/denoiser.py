"""The trained network: a VideoDiT plus the encoders of its conditions.

Routes condition inputs to where they enter the DiT: text ids go through the
jointly trained text encoder; its tokens feed cross-attention and its pooled
vector the (per-frame) adaLN conditioning. Visual conditions (given frames,
a source clip) are channel-concat groups: each named input is broadcast to
[B, T, H, W, c] (a per-frame mask [B, T] or a per-clip flag [B] becomes one
channel) and concatenated to the noisy clip in the order of ``concat``.

``clean``: (frames key, mask key) groups whose given frames also enter as clean frames of
the clip itself: where the mask [B, T] is set, x is replaced by the given frame and that
frame's noise level by t = 0, so the DiT reads them exactly as it reads the clean end of
denoising (besides the concat channels). A dropped condition has an all-zero mask, so
nothing is replaced and guidance's unconditional branch is really unconditional.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vdm.models.dit import VideoDiT
from vdm.models.text import TextEncoder


class Denoiser(nnx.Module):
    def __init__(self, dit: VideoDiT, text_encoder: TextEncoder | None = None,
                 concat: Sequence[tuple[str, int]] = (), clean: Sequence[tuple[str, str]] = ()):
        self.dit = dit
        self.text_encoder = text_encoder
        self.concat = tuple((str(k), int(c)) for k, c in concat)
        self.clean = tuple((str(v), str(m)) for v, m in clean)
        missing = [k for group in self.clean for k in group if k not in dict(self.concat)]
        if missing:
            raise ValueError(f"clean frame groups {self.clean} name inputs {missing} that are not "
                             f"among the concat inputs {[k for k, _ in self.concat]}")
        if self.clean and dit.patch_size[0] > 1:
            # A tubelet takes its noisiest frame's level, so a given frame sharing one with noisy
            # frames is seen at their noise: the clean path then adds nothing to the concat.
            warnings.warn(f"clean given frames with patch_size[0]={dit.patch_size[0]}: a given frame "
                          f"shares its tubelet with noisy frames and is not seen clean; use patch_size[0]=1")
        total = sum(c for _, c in self.concat)
        if total != dit.concat_channels:
            raise ValueError(f"concat groups {self.concat} have {total} channels; the DiT was built "
                             f"with concat_channels={dit.concat_channels}")

    def __call__(self, x: jax.Array, t: jax.Array, *, text_ids: jax.Array | None = None,
                 text_mask: jax.Array | None = None, **visual: jax.Array) -> jax.Array:
        context = context_mask = cond = None
        if text_ids is not None:
            if self.text_encoder is None:
                raise ValueError("text inputs given, but this model has no text condition")
            context, cond = self.text_encoder(text_ids, text_mask)
            context_mask = text_mask
            if self.dit.context_dim is None:  # pooled text only (adaLN)
                context = context_mask = None
        names = [k for k, _ in self.concat]
        if sorted(visual) != sorted(names):
            raise ValueError(f"this model takes visual inputs {names}, got {sorted(visual)}")
        if self.clean:
            x, t = self._clean_frames(x, t, visual)
        concat = None
        if self.concat:
            B, T, H, W, _ = x.shape
            parts = []
            for k, c in self.concat:
                v = visual[k].astype(x.dtype)
                v = v.reshape(v.shape + (1,) * (5 - v.ndim))  # [B] or [B, T] -> rank 5
                parts.append(jnp.broadcast_to(v, (B, T, H, W, c)))
            concat = jnp.concatenate(parts, axis=-1)  # [B, T, H, W, sum c]
        return self.dit(x, t, cond=cond, context=context, context_mask=context_mask, concat=concat)

    def _clean_frames(self, x: jax.Array, t: jax.Array, visual: dict) -> tuple[jax.Array, jax.Array]:
        """Given frames into x, with per-frame t [B, T] = 0 there."""
        t = jnp.asarray(t, jnp.float32)
        t = jnp.broadcast_to(t if t.ndim == 2 else t.reshape(-1, 1), x.shape[:2])  # [B, T]
        for video_key, mask_key in self.clean:
            given = visual[mask_key] > 0                                   # [B, T]
            x = jnp.where(given[:, :, None, None, None], visual[video_key].astype(x.dtype), x)
            t = jnp.where(given, 0.0, t)
        return x, t
