"""einsum_attention (the CPU default) against jax.nn.dot_product_attention: values and
gradients, with every mask form the models use, several batch axes and bf16."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm.models import layers
from vdm.models.einsum_attention import einsum_attention


def rand(key, *shape, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(key), shape, dtype)


def xla(q, k, v, mask=None):
    return layers.attention(q, k, v, mask=mask, implementation="xla")


def einsum(q, k, v, mask=None):
    return layers.attention(q, k, v, mask=mask, implementation="einsum")


def value_and_grads(fn, q, k, v, mask, cot):
    """The output and the gradients of <fn(q, k, v), cot> w.r.t. q, k and v."""
    loss = lambda q, k, v: jnp.sum(fn(q, k, v, mask) * cot)
    return fn(q, k, v, mask), jax.grad(loss, argnums=(0, 1, 2))(q, k, v)


def band(n, width=1):
    return np.abs(np.arange(n)[:, None] - np.arange(n)[None]) <= width


# key padding: example 0 has 3 real keys of 7, example 1 all 7
PADDING = np.array([[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], bool)


@pytest.mark.parametrize("case", ["none", "band_2d", "band_3d", "key_padding", "fully_masked_row"])
def test_values_and_gradients_equal_dot_product_attention(case):
    n, lq, lk, h, d = 2, 7, 7, 3, 8
    q, k, v, cot = rand(0, n, lq, h, d), rand(1, n, lk, h, d), rand(2, n, lk, h, d), rand(3, n, lq, h, d)
    mask = {"none": None, "band_2d": band(lq), "band_3d": np.stack([band(lq), band(lq, 2)]),
            "key_padding": layers.key_padding_mask(PADDING),
            # query 0 of example 1 may attend to nothing: both give the uniform average and
            # no gradient through its (constant) logits
            "fully_masked_row": np.stack([band(lq), band(lq) & (np.arange(lq) > 0)[:, None]])}[case]
    out, grads = value_and_grads(einsum, q, k, v, mask, cot)
    ref, ref_grads = value_and_grads(xla, q, k, v, mask, cot)
    np.testing.assert_allclose(out, ref, atol=2e-6)
    for name, g, r in zip("qkv", grads, ref_grads):
        np.testing.assert_allclose(g, r, atol=2e-5, err_msg=f"d{name}")
    assert float(jnp.abs(grads[0]).max()) > 0.1  # the gradients are not trivially zero


def test_several_batch_axes_are_not_merged_and_match():
    """The DiT's [B, T, S, heads, hd] layout: the same as mapping over B with a [L, L] mask."""
    q, k, v, cot = (rand(i, 2, 3, 5, 2, 4) for i in range(4))
    mask = band(5)
    out, grads = value_and_grads(einsum, q, k, v, mask, cot)
    per_b = lambda q, k, v, m: jax.vmap(lambda q, k, v: xla(q, k, v, m))(q, k, v)
    ref, ref_grads = value_and_grads(per_b, q, k, v, mask, cot)
    np.testing.assert_allclose(out, ref, atol=2e-6)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, atol=2e-5)


def test_bf16_is_close_to_fp32_and_stays_bf16():
    q, k, v, cot = (rand(i, 2, 16, 2, 32) for i in range(4))
    half = [x.astype(jnp.bfloat16) for x in (q, k, v, cot)]
    out, grads = value_and_grads(einsum, *half[:3], None, half[3])
    ref, ref_grads = value_and_grads(einsum, q, k, v, None, cot)
    assert out.dtype == jnp.bfloat16 and {g.dtype for g in grads} == {jnp.dtype(jnp.bfloat16)}
    rel = lambda a, b: float(jnp.linalg.norm(a.astype(jnp.float32) - b) / jnp.linalg.norm(b))
    assert rel(out, ref) < 0.02
    assert max(rel(g, r) for g, r in zip(grads, ref_grads)) < 0.03


def test_remat_and_jit_give_the_same_gradients():
    q, k, v, cot = (rand(i, 2, 6, 2, 8) for i in range(4))
    loss = lambda q, k, v: jnp.sum(einsum_attention(q, k, v) * cot)
    plain = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
    rematted = jax.jit(jax.grad(jax.checkpoint(loss), argnums=(0, 1, 2)))(q, k, v)
    for a, b in zip(plain, rematted):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_mismatched_batch_axes_are_refused():
    q = rand(0, 2, 4, 2, 8)
    with pytest.raises(ValueError, match="same batch axes"):
        einsum_attention(q, q[:1], q[:1])
