"""Byte tokenizer and text encoder."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vdm import sharding  # noqa: F401  (before modules are created)
from vdm.models import TextEncoder, detokenize, param_count, tokenize
from vdm.models import text



def test_round_trip_and_ids():
    texts = ["a red circle moves left", "", "café ☕ über"]
    ids, mask = tokenize(texts, 32)
    assert ids.shape == mask.shape == (3, 32) and ids.dtype == np.int32 and mask.dtype == bool
    assert detokenize(ids) == texts
    assert ids[0, 0] == text.BOS and ids[0, 1] == ord("a") + 3
    assert ids[0, len(texts[0]) + 1] == text.EOS
    assert list(ids[1, :3]) == [text.BOS, text.EOS, text.PAD]
    assert ids.max() < text.VOCAB_SIZE == 259
    one, one_mask = tokenize("hi", 6)
    assert one.shape == (6,) and list(one) == [1, ord("h") + 3, ord("i") + 3, 2, 0, 0]
    assert list(one_mask) == [True, True, True, True, False, False]
    assert detokenize(one) == "hi"


def test_padding_mask():
    ids, mask = tokenize(["abc", "abcdefg"], 12)
    assert mask.sum(1).tolist() == [5, 9]  # BOS + bytes + EOS
    np.testing.assert_array_equal(mask, ids != text.PAD)
    assert not np.any(ids[~mask])


def test_truncation_keeps_eos_and_whole_characters():
    ids, mask = tokenize("abcdefghij", 6)
    assert list(ids) == [1, *(ord(c) + 3 for c in "abcd"), text.EOS] and mask.all()
    assert detokenize(ids) == "abcd"
    # 'é' is two bytes: 5 byte slots hold two of them, never half of a third
    ids, mask = tokenize("ééé", 7)
    assert detokenize(ids) == "éé"
    assert ids[5] == text.EOS and ids[6] == text.PAD and mask.sum() == 6
    with pytest.raises(ValueError):
        tokenize("x", 1)


def test_encoder_shapes_and_padding_invariance():
    enc = TextEncoder(width=32, depth=2, num_heads=2, max_len=16, rngs=nnx.Rngs(0))
    ids, mask = tokenize(["red square", "a blue circle moving up"], 16)
    tokens, pooled = enc(jnp.asarray(ids), jnp.asarray(mask))
    assert tokens.shape == (2, 16, 32) and pooled.shape == (2, 32)
    assert bool(jnp.all(jnp.isfinite(tokens)))

    # pooled is the masked mean
    w = mask[..., None]
    np.testing.assert_allclose(pooled, (np.asarray(tokens) * w).sum(1) / w.sum(1), atol=1e-5)

    # changing what sits in padded positions changes neither real tokens nor pooled
    junk = np.where(mask, ids, np.random.default_rng(0).integers(3, 259, ids.shape))
    tokens2, pooled2 = enc(jnp.asarray(junk), jnp.asarray(mask))
    np.testing.assert_allclose(pooled2, pooled, atol=1e-5)
    np.testing.assert_allclose(np.asarray(tokens2)[mask], np.asarray(tokens)[mask], atol=1e-5)

    # ...while changing a real token does change them
    other = ids.copy()
    other[0, 1] += 1
    assert float(jnp.abs(enc(jnp.asarray(other), jnp.asarray(mask))[1][0] - pooled[0]).max()) > 1e-4

    with pytest.raises(ValueError, match="max_len"):
        enc(jnp.zeros((1, 17), jnp.int32), jnp.ones((1, 17), bool))


def test_encoder_parameters_and_gradients():
    enc = TextEncoder(width=32, depth=2, num_heads=2, max_len=16, rngs=nnx.Rngs(0))
    w, block = 32, 4 * 32 * 32 + 4 * 32 + 2 * 16 + 2 * 32 * 128 + 128 + 32 + 4 * 32
    assert param_count(enc) == 259 * w + 16 * w + 2 * block + 2 * w
    assert sharding.logical_names(enc.token_embed.embedding) == ("vocab", "embed")

    ids, mask = tokenize(["green", "up"], 16)
    grads = nnx.grad(lambda m: m(jnp.asarray(ids), jnp.asarray(mask))[1].sum())(enc)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_bag_pool_keeps_every_byte():
    """pool='mean+bag': pooled = [mean of the encoder's tokens, mean of LN(embedding + position)]
    over real tokens; the bag half ignores padding and the blocks."""
    ids, mask = tokenize(["a red circle moves left", "a red circle moves right"], 32)
    ids, mask = jnp.asarray(ids), jnp.asarray(mask)
    enc = TextEncoder(width=32, depth=2, num_heads=2, max_len=32, pool="mean+bag", rngs=nnx.Rngs(0))
    tokens, pooled = enc(ids, mask)
    assert enc.pooled_dim == 64 and pooled.shape == (2, 64)
    w = np.asarray(mask, np.float32)[..., None]
    bag = np.asarray(enc.bag_norm(enc.token_embed(ids) + enc.pos_embed[...][None]))
    np.testing.assert_allclose(pooled[:, :32], (np.asarray(tokens) * w).sum(1) / w.sum(1), atol=1e-5)
    np.testing.assert_allclose(pooled[:, 32:], (bag * w).sum(1) / w.sum(1), atol=1e-5)
    # the bag half does not depend on the blocks: zeroing them changes only the first half
    graphdef, state = nnx.split(enc)
    zeroed = jax.tree.map(lambda v: v, state)
    for path, v in nnx.to_flat_state(zeroed):
        if path[0] == "blocks":
            v.set_value(jnp.zeros_like(v.get_value()))
    _, pooled0 = nnx.merge(graphdef, zeroed)(ids, mask)
    np.testing.assert_allclose(pooled0[:, 32:], pooled[:, 32:], atol=1e-6)
    assert float(jnp.abs(pooled0[:, :32] - pooled[:, :32]).max()) > 1e-3

    with pytest.raises(ValueError, match="'max'"):
        TextEncoder(width=32, depth=1, num_heads=2, max_len=8, pool="max", rngs=nnx.Rngs(0))
