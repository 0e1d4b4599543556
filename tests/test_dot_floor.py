"""The dot floor finds every matmul a program runs, as many times as it runs, and times it."""
import jax
import jax.numpy as jnp
import pytest

from tests.test_flops import B, CLIP, TEXT, build, loss_fn
from vdm import flops
from vdm.dot_floor import _flops, collect_dots, dot_floor, swapped


def _dot_flops(fn, *args):
    return sum(_flops(key) * count for key, count in collect_dots(jax.make_jaxpr(fn)(*args)).items())


@pytest.mark.parametrize("layout,remat,scan", [("interleaved", "none", False), ("sequential", "full", False),
                                               ("joint", "dots", True)])
def test_the_gradients_dots_are_the_analytic_count(layout, remat, scan):
    """Counted from the jaxpr (scan bodies times their length, remat recompute included),
    the dots of a gradient step carry exactly the FLOPs vdm.flops predicts."""
    model = build(layout, remat, scan_layers=scan)
    loss, params = loss_fn(model)
    assert _dot_flops(jax.grad(loss), params) == pytest.approx(
        flops.train_step_flops(model, B, CLIP, TEXT), rel=1e-9)


def test_loops_and_branches_count_as_they_run():
    a = jnp.ones((4, 6))
    w = jnp.ones((6, 6))
    one = 2 * 4 * 6 * 6

    def scanned(a):
        return jax.lax.scan(lambda c, _: (c @ w, None), a, length=5)[0]

    def branch(a, p):  # the costlier branch counts: two products, not one
        return jax.lax.cond(p, lambda x: x @ w @ w, lambda x: x @ w, a)

    assert _dot_flops(scanned, a) == 5 * one
    assert _dot_flops(branch, a, True) == 2 * one
    assert _dot_flops(lambda x: jnp.einsum("bij,bjk->bik", x, x), jnp.ones((3, 5, 5))) == 2 * 3 * 5 * 5 * 5


def test_floor_times_each_distinct_dot_once_and_scales_by_count():
    a = jax.random.normal(jax.random.key(0), (256, 256))
    xtx = lambda x: jax.lax.dot_general(x, x, (((0,), (0,)), ((), ())))  # x^T x, another dot
    out = dot_floor(lambda x: (x @ x) @ x + xtx(x), a, repeats=3)
    assert out["distinct_dots"] == 2  # x @ x twice (same shapes) and x^T x once
    assert out["dot_flops"] == 3 * 2 * 256 ** 3
    counts = sorted(d["count"] for d in out["top_dots"])
    assert counts == [1, 2]
    assert out["dot_floor_s"] == pytest.approx(
        sum(d["count"] * d["ms_each"] for d in out["top_dots"]) / 1e3, rel=0.05, abs=1e-5)
    assert 0 < out["dot_floor_best_order_s"] <= out["dot_floor_s"]
    # swapping operands transposes the product
    x, y = jnp.arange(6.0).reshape(2, 3), jnp.arange(12.0).reshape(3, 4)
    key = ((2, 3), "float32", (3, 4), "float32", (((1,), (0,)), ((), ())), "float32")
    l, _, r, _, dims, _ = swapped(key)
    assert (l, r) == ((3, 4), (2, 3))
    assert jnp.array_equal(jax.lax.dot_general(y, x, dims), (x @ y).T)
    with pytest.raises(ValueError, match="no dot_general"):
        dot_floor(lambda x: x + 1, a)
