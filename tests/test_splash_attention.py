"""Splash attention (the Pallas TPU kernel, run here in interpret mode) computes what XLA's
attention computes, through layers.attention, on one device and per shard on a mesh."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm import sharding
from vdm.models import layers
from vdm.models.splash_attention import BLOCK, splash_attention, supports

L = 2 * BLOCK  # two blocks each way


def _qkv(*lead, length=L, heads=2, head_dim=16, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return [jax.random.normal(k, lead + (length, heads, head_dim)) for k in keys]


def _reference(q, k, v, mask=None):
    return layers.attention(q, k, v, mask=mask, implementation="xla")


def test_values_and_gradients_equal_xla_attention():
    q, k, v = _qkv(2, 1)  # [B, T', L, heads, hd]: several batch axes, as the DiT calls it
    t = np.arange(L) // 16
    band = np.abs(t[:, None] - t[None, :]) <= 1  # a static [L, L] mask: blocks partly and fully masked
    for mask in (None, band):
        got = layers.attention(q, k, v, mask=mask, implementation="splash")
        np.testing.assert_allclose(got, _reference(q, k, v, mask), atol=2e-5)
        loss = lambda impl: lambda q, k, v: jnp.sum(jnp.sin(layers.attention(q, k, v, mask=mask, implementation=impl)))
        for g, want in zip(jax.grad(loss("splash"), (0, 1, 2))(q, k, v), jax.grad(loss("xla"), (0, 1, 2))(q, k, v)):
            np.testing.assert_allclose(g, want, atol=2e-4)


def test_calls_the_kernel_cannot_take_go_to_xla():
    short = _qkv(2, length=16)  # a temporal line of 16 frames: shorter than a block
    assert not supports(16, 16, None)
    np.testing.assert_allclose(layers.attention(*short, implementation="splash"), _reference(*short), atol=1e-6)
    q, k, v = _qkv(2)
    padding = layers.key_padding_mask(jnp.arange(L)[None].repeat(2, 0) < jnp.array([[100], [L]]))
    assert not supports(L, L, padding)  # per-example masks are not static
    np.testing.assert_allclose(layers.attention(q, k, v, mask=padding, implementation="splash"),
                               _reference(q, k, v, padding), atol=1e-6)
    empty_row = np.ones((L, L), bool)
    empty_row[3] = False  # XLA's attention averages every key there
    assert not supports(L, L, empty_row)
    np.testing.assert_allclose(layers.attention(q, k, v, mask=empty_row, implementation="splash"),
                               _reference(q, k, v, empty_row), atol=1e-6)
    traced = jax.jit(lambda q, m: layers.attention(q, k, v, mask=m, implementation="splash"))
    np.testing.assert_allclose(traced(q, np.ones((L, L), bool)), _reference(q, k, v), atol=1e-5)
    with pytest.raises(ValueError, match=f"divisible by {BLOCK}"):
        splash_attention(*short)


def test_per_shard_on_a_mesh_equals_one_device():
    """8 devices: batch over data x fsdp, heads over tensor, each device runs the kernel on its share."""
    q, k, v = _qkv(4, 1, heads=2)
    want = _reference(q, k, v)
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "sequence": 1, "tensor": 2})
    with sharding.use_mesh(mesh):
        got = jax.jit(lambda q, k, v: layers.attention(q, k, v, implementation="splash"))(q, k, v)
    np.testing.assert_allclose(got, want, atol=2e-5)
