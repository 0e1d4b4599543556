"""Byte-level tokenizer (no download) and a small text encoder trained with the DiT.

Token ids: PAD=0, BOS=1, EOS=2, byte b -> b + 3 (VOCAB_SIZE = 259). A text
becomes [BOS, bytes..., EOS, PAD...]; truncation drops bytes (never a partial
UTF-8 character) and keeps EOS.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vdm import sharding
from vdm.models.layers import Mlp, SelfAttention, key_padding_mask

PAD, BOS, EOS = 0, 1, 2
BYTE_OFFSET = 3
VOCAB_SIZE = 256 + BYTE_OFFSET

Array = jax.Array


def _encode(text: str, max_len: int) -> list[int]:
    data = text.encode("utf-8")
    if len(data) > max_len - 2:
        # Cut to fit, then drop a trailing incomplete UTF-8 sequence.
        data = data[:max_len - 2].decode("utf-8", errors="ignore").encode("utf-8")
    return [BOS, *(b + BYTE_OFFSET for b in data), EOS]


def tokenize(texts: str | Sequence[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Text(s) -> (ids int32, mask bool), [L] for one string, [B, L] for a sequence.

    mask is True on real tokens (BOS, bytes, EOS) and False on padding.
    """
    if max_len < 2:
        raise ValueError(f"max_len must leave room for BOS and EOS (>= 2), got {max_len}")
    single = isinstance(texts, str)
    batch = [texts] if single else list(texts)
    ids = np.full((len(batch), max_len), PAD, np.int32)
    for i, text in enumerate(batch):
        tokens = _encode(text, max_len)
        ids[i, :len(tokens)] = tokens
    mask = ids != PAD
    return (ids[0], mask[0]) if single else (ids, mask)


def detokenize(ids) -> str | list[str]:
    """ids [L] -> str, or [B, L] -> list of str; stops at EOS, skips BOS and PAD."""
    ids = np.asarray(ids)
    if ids.ndim == 2:
        return [detokenize(row) for row in ids]
    out = bytearray()
    for i in ids.tolist():
        if i == EOS:
            break
        if i >= BYTE_OFFSET:
            out.append(i - BYTE_OFFSET)
    return out.decode("utf-8", errors="replace")


class TextBlock(nnx.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, num_heads: int, *, mlp_ratio: float, dtype, rngs: nnx.Rngs):
        ln = lambda: nnx.LayerNorm(
            width, rngs=rngs,
            scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)))
        self.norm1, self.norm2 = ln(), ln()
        self.attn = SelfAttention(width, num_heads, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(width, mlp_ratio, dtype=dtype, rngs=rngs)

    def __call__(self, x: Array, mask: Array) -> Array:
        x = x + self.attn(self.norm1(x), mask=mask)
        return x + self.mlp(self.norm2(x))


POOLS = ("mean", "mean+bag")


class TextEncoder(nnx.Module):
    """Token + learned position embeddings -> pre-LN blocks (key-padding mask) -> LN.

    ``__call__(ids [B, L], mask [B, L]) -> (tokens [B, L, width], pooled [B, pooled_dim])``,
    L <= max_len. pooled (what enters adaLN) is, by ``pool``:
      'mean'      the mean of the tokens where mask is True; pooled_dim = width.
      'mean+bag'  that, concatenated with the mean of the separately normalised input
                  embeddings LN(token + position): a bag of the caption's bytes that no
                  block can overwrite; pooled_dim = 2 * width.
    Why the bag: trained jointly with a DiT, the blocks carry into every token the words
    that pay off first (colour), and after the final LN the rest is crushed. In the
    moving-shapes quickstart the direction words moved the mean-pooled vector by ~1% of
    its norm against ~50% for colour words, with byte captions and with one-code-per-factor
    captions alike, and the DiT never learned the direction of motion. In the bag every
    byte keeps its share (each token is normalised on its own before the mean).
    """

    def __init__(self, *, vocab_size: int = VOCAB_SIZE, width: int, depth: int, num_heads: int,
                 max_len: int, mlp_ratio: float = 4.0, pool: str = "mean",
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if pool not in POOLS:
            raise ValueError(f"text pool {pool!r} is not one of {POOLS}")
        self.max_len, self.width = max_len, width
        self.pooled_dim = width * (2 if pool == "mean+bag" else 1)
        init = nnx.initializers.normal(0.02)
        self.token_embed = nnx.Embed(
            vocab_size, width, dtype=dtype, rngs=rngs,
            embedding_init=nnx.with_partitioning(init, ("vocab", "embed")))
        self.pos_embed = nnx.Param(
            nnx.with_partitioning(init, (None, "embed"))(rngs.params(), (max_len, width)))
        self.blocks = nnx.List([
            TextBlock(width, num_heads, mlp_ratio=mlp_ratio, dtype=dtype, rngs=rngs)
            for _ in range(depth)])
        ln = lambda: nnx.LayerNorm(
            width, rngs=rngs,
            scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)))
        self.norm = ln()
        self.bag_norm = ln() if pool == "mean+bag" else None

    def __call__(self, ids: Array, mask: Array) -> tuple[Array, Array]:
        B, L = ids.shape
        if L > self.max_len:
            raise ValueError(f"{L} tokens exceed the encoder's max_len {self.max_len}")
        mask = jnp.asarray(mask, bool)
        x = self.token_embed(ids)                                # [B, L, width]
        x = x + self.pos_embed[:L].astype(x.dtype)
        x = sharding.constrain(x, ("act_batch", "act_context", "act_embed"))
        bag = None if self.bag_norm is None else self.bag_norm(x)  # [B, L, width]
        attn_mask = key_padding_mask(mask)                       # [B, 1, 1, L]
        for block in self.blocks:
            x = block(x, attn_mask)
        tokens = self.norm(x)                                    # [B, L, width]
        w = mask[..., None].astype(tokens.dtype)
        mean = lambda v: (v * w).sum(1) / jnp.maximum(w.sum(1), 1.0)  # [B, width]
        pooled = mean(tokens) if bag is None else jnp.concatenate([mean(tokens), mean(bag)], -1)
        return tokens, pooled
