"""Attention, RoPE, sin-cos embeddings and adaLN pieces against plain references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vdm import sharding  # noqa: F401  (before modules are created)
from vdm.models import layers



def naive_attention(q, k, v, mask=None):
    """float64 softmax attention; q [N, Lq, H, d], k/v [N, Lk, H, d], mask [N, Lq, Lk]."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    s = np.einsum("nqhd,nkhd->nhqk", q, k) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(np.asarray(mask)[:, None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("nhqk,nkhd->nqhd", p, v)


def naive_rope(x, pos, split, base):
    """Rotate pairs (i, i + d/2) one position at a time; x [L, H, d], pos [L, 3]."""
    x = np.asarray(x, np.float64)
    half = x.shape[-1] // 2
    angles = np.zeros((len(pos), half))
    j = 0
    for axis, d in enumerate(split):
        for i in range(d // 2):
            angles[:, j] = pos[:, axis] * base ** (-2.0 * i / d)
            j += 1
    out = x.copy()
    for l in range(len(pos)):
        c, s = np.cos(angles[l]), np.sin(angles[l])
        a, b = x[l, :, :half], x[l, :, half:]
        out[l, :, :half], out[l, :, half:] = a * c - b * s, a * s + b * c
    return out


def rand(key, *shape):
    return jax.random.normal(jax.random.key(key), shape)


IMPLEMENTATIONS = [None, "einsum"]  # jax.nn.dot_product_attention (XLA) and einsum_attention


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_attention_matches_naive_with_padding_mask(impl):
    q, k, v = rand(0, 2, 5, 3, 8), rand(1, 2, 7, 3, 8), rand(2, 2, 7, 3, 8)
    valid = np.array([[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0]], bool)
    out = layers.attention(q, k, v, mask=layers.key_padding_mask(valid), implementation=impl)
    ref = naive_attention(q, k, v, np.broadcast_to(valid[:, None], (2, 5, 7)))
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # padded keys are really ignored
    k2 = k.at[:, 6].add(100.0)
    v2 = v.at[:, 6].add(100.0)
    np.testing.assert_allclose(layers.attention(q, k2, v2, mask=layers.key_padding_mask(valid),
                                                implementation=impl), out, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_attention_2d_and_3d_masks(impl):
    q, k, v = rand(3, 2, 6, 2, 4), rand(4, 2, 6, 2, 4), rand(5, 2, 6, 2, 4)
    band = np.abs(np.arange(6)[:, None] - np.arange(6)[None]) <= 1
    ref = naive_attention(q, k, v, np.broadcast_to(band, (2, 6, 6)))
    attend = lambda **kw: layers.attention(q, k, v, implementation=impl, **kw)
    np.testing.assert_allclose(attend(mask=band), ref, atol=1e-5)
    np.testing.assert_allclose(attend(mask=np.stack([band, band])), ref, atol=1e-5)
    np.testing.assert_allclose(attend(), naive_attention(q, k, v), atol=1e-5)
    with pytest.raises(ValueError, match="want 2, 3 or 4 dims"):
        attend(mask=band[None, None, None])


def test_attention_rejects_bad_implementation():
    q = rand(0, 1, 4, 2, 8)
    with pytest.raises(ValueError, match="flash"):
        layers.attention(q, q, q, implementation="flash")
    with pytest.raises(ValueError, match="flash"):
        layers.SelfAttention(16, 2, attention_impl="flash", rngs=nnx.Rngs(0))


def test_default_rope_split():
    assert layers.default_rope_split(32) == (12, 10, 10)
    assert layers.default_rope_split(64) == (24, 20, 20)
    assert layers.default_rope_split(12) == (4, 4, 4)
    for hd in (6, 8, 16, 48, 128):
        split = layers.default_rope_split(hd)
        assert sum(split) == hd and all(d % 2 == 0 and d > 0 for d in split)
    with pytest.raises(ValueError):
        layers.rope_3d(np.zeros((4, 3)), 32, split=(12, 12, 10))
    with pytest.raises(ValueError):
        layers.rope_3d(np.zeros((4, 3)), 32, split=(11, 11, 10))


def test_rope_matches_pairwise_rotation():
    pos = np.array([[0, 0, 0], [1, 2, 3], [3, 1, 0], [2, 3, 1]])
    x = rand(6, 4, 2, 12)
    cos, sin = layers.rope_3d(pos, 12, base=10.0)
    assert cos.shape == (4, 6)
    ref = naive_rope(x, pos, layers.default_rope_split(12), 10.0)
    np.testing.assert_allclose(layers.apply_rope(x, cos, sin), ref, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    hd, L = 32, 6
    q, k = rand(7, 1, L, 1, hd), rand(8, 1, L, 1, hd)
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 8, size=(L, 3))

    def scores(p):
        cos, sin = layers.rope_3d(p, hd, base=10.0)
        qr, kr = layers.apply_rope(q, cos, sin), layers.apply_rope(k, cos, sin)
        return np.einsum("nqhd,nkhd->qk", qr, kr)

    base = scores(pos)
    for shift in ([1, 0, 0], [0, 3, 0], [0, 0, 5], [2, -1, 7]):
        np.testing.assert_allclose(scores(pos + np.array(shift)), base, atol=1e-4)
    # ...but they do depend on relative position, in every axis
    for axis in range(3):
        moved = pos.copy()
        moved[0, axis] += 1
        assert np.abs(scores(moved) - base).max() > 1e-2


def test_apply_rope_is_a_rotation():
    x = rand(9, 3, 5, 2, 16)
    cos, sin = layers.rope_3d(np.arange(15).reshape(5, 3), 16)
    y = layers.apply_rope(x, cos, sin)
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)


def test_sincos_embeddings():
    e = layers.sincos_1d(np.array([0.0, 1.0]), 8)
    np.testing.assert_allclose(e[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-7)
    omega = 1.0 / 10000 ** (np.arange(4) / 4)
    np.testing.assert_allclose(e[1], np.concatenate([np.sin(omega), np.cos(omega)]), atol=1e-6)
    pos = layers.grid_positions((2, 3, 4))
    assert pos.shape == (24, 3) and tuple(pos[-1]) == (1, 2, 3) and tuple(pos[1]) == (0, 0, 1)
    e3 = layers.sincos_3d(pos, 16)
    ref = (np.concatenate([layers.sincos_1d(pos[:, 1], 8), layers.sincos_1d(pos[:, 2], 8)], -1)
           + layers.sincos_1d(pos[:, 0], 16))
    np.testing.assert_allclose(e3, ref, atol=1e-6)
    assert len({tuple(np.round(r, 5)) for r in np.asarray(e3)}) == 24  # all positions distinct


def test_self_attention_matches_naive_with_rope_and_mask():
    attn = layers.SelfAttention(24, 2, rngs=nnx.Rngs(0))
    x = rand(10, 2, 5, 24)
    pos = np.array([[0, 0, 0], [0, 1, 0], [1, 0, 1], [2, 1, 1], [3, 0, 2]])
    rope = layers.rope_3d(pos, 12, base=10.0)
    band = np.abs(pos[:, None, 0] - pos[None, :, 0]) <= 1
    out = attn(x, rope=rope, mask=band)

    kqkv, bqkv = np.asarray(attn.qkv.kernel[...]), np.asarray(attn.qkv.bias[...])
    qkv = np.einsum("nld,dchk->nlchk", np.asarray(x, np.float64), kqkv) + bqkv
    rms = lambda a, s: a / np.sqrt((a ** 2).mean(-1, keepdims=True) + 1e-6) * s
    q = rms(qkv[:, :, 0], np.asarray(attn.q_norm.scale[...]))
    k = rms(qkv[:, :, 1], np.asarray(attn.k_norm.scale[...]))
    split = layers.default_rope_split(12)
    q = np.stack([naive_rope(qi, pos, split, 10.0) for qi in q])
    k = np.stack([naive_rope(ki, pos, split, 10.0) for ki in k])
    o = naive_attention(q, k, qkv[:, :, 2], np.broadcast_to(band, (2, 5, 5)))
    ref = np.einsum("nlhk,hkd->nld", o, np.asarray(attn.out.kernel[...])) + np.asarray(attn.out.bias[...])
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_cross_attention_ignores_padded_context():
    ca = layers.CrossAttention(16, 8, 2, rngs=nnx.Rngs(1))
    x, ctx = rand(11, 2, 6, 16), rand(12, 2, 4, 8)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    out = ca(x, ctx, mask)
    assert out.shape == (2, 6, 16)
    np.testing.assert_allclose(ca(x, ctx.at[:, 3].set(50.0), mask), out, atol=1e-6)
    assert np.abs(ca(x, ctx.at[:, 1].set(5.0), mask) - out).max() > 1e-3


def test_mlp_and_annotations():
    mlp = layers.Mlp(8, 2.0, rngs=nnx.Rngs(0))
    assert mlp.fc1.kernel.shape == (8, 16)
    assert mlp(rand(0, 3, 8)).shape == (3, 8)
    assert sharding.logical_names(mlp.fc1.kernel) == ("embed", "mlp")
    assert sharding.logical_names(mlp.fc2.kernel) == ("mlp", "embed")
    attn = layers.SelfAttention(16, 4, rngs=nnx.Rngs(0))
    assert attn.qkv.kernel.shape == (16, 3, 4, 4)
    assert sharding.logical_names(attn.qkv.kernel) == ("embed", None, "heads", "head_dim")
    assert sharding.logical_names(attn.out.kernel) == ("heads", "head_dim", "embed")
    assert layers.param_count(attn) == 4 * 16 * 16 + 4 * 16 + 2 * 4


def test_adaln_zero_and_modulate():
    mod = layers.AdaLNModulation(8, 6, 3, rngs=nnx.Rngs(0))
    out = mod(rand(1, 2, 4, 8))
    assert out.shape == (2, 4, 3, 6) and not np.any(np.asarray(out))
    x, shift, scale = rand(2, 5), rand(3, 5), rand(4, 5)
    np.testing.assert_allclose(layers.modulate(x, shift, scale), x * (1 + scale) + shift)
    y = layers.layer_norm(rand(5, 3, 7) * 4 + 2)
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)


def test_timestep_embedding():
    f = layers.timestep_features(jnp.array([0.0, 0.5]), 8)
    np.testing.assert_allclose(f[0], [1, 1, 1, 1, 0, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(f[1, 0], np.cos(500.0), atol=1e-4)
    emb = layers.TimestepEmbedder(16, rngs=nnx.Rngs(0))
    e = emb(jnp.array([0.1, 0.2, 0.2]))
    assert e.shape == (3, 16)
    np.testing.assert_allclose(e[1], e[2])
    assert np.abs(e[0] - e[1]).max() > 1e-4
