"""Prediction targets, their inversion, loss weighting and the training loss."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm.diffusion.losses import (PREDICTIONS, VELOCITY_WEIGHT_T_FLOOR, WEIGHTINGS, diffusion_loss,
                                 loss_weight, target, to_x0_eps)
from vdm.diffusion.schedules import RectifiedFlow, VPCosine

PROCESSES = [RectifiedFlow(), VPCosine()]
CASES = list(itertools.product(PROCESSES, PREDICTIONS))


def _ids(case):
    return f"{case[0].name}-{case[1]}"


def _data(shape=(4, 3, 5), seed=0):
    k0, k1 = jax.random.split(jax.random.key(seed))
    return 1.0 + jax.random.normal(k0, shape), jax.random.normal(k1, shape)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_target_round_trips_through_to_x0_eps(case):
    process, prediction = case
    x0, eps = _data()
    t = jnp.array([0.05, 0.3, 0.7, 0.95])  # [B]
    x_t = process.add_noise(x0, eps, t)
    x0_hat, eps_hat = to_x0_eps(process, prediction, target(process, prediction, x0, eps, t), x_t, t)
    np.testing.assert_allclose(x0_hat, x0, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(eps_hat, eps, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
def test_flow_target_is_time_derivative_of_x_t(process):
    x0, eps = _data()
    t = jnp.array([0.1, 0.4, 0.6, 0.9])
    h = 1e-3
    fd = (process.add_noise(x0, eps, t + h) - process.add_noise(x0, eps, t - h)) / (2 * h)
    np.testing.assert_allclose(target(process, "flow", x0, eps, t), fd, atol=2e-3)


def test_targets_closed_forms():
    x0, eps = _data()
    t = jnp.array([0.1, 0.4, 0.6, 0.9])
    tt = np.asarray(t)[:, None, None]
    np.testing.assert_allclose(target(RectifiedFlow(), "flow", x0, eps, t), eps - x0, atol=1e-6)
    c, s = np.cos(np.pi / 2 * tt), np.sin(np.pi / 2 * tt)
    np.testing.assert_allclose(target(VPCosine(), "v", x0, eps, t), c * eps - s * x0, atol=1e-6)
    np.testing.assert_array_equal(target(VPCosine(), "eps", x0, eps, t), eps)
    np.testing.assert_array_equal(target(VPCosine(), "x0", x0, eps, t), x0)


def test_rectified_flow_velocity_inversion_closed_form():
    # Flow prediction on RectifiedFlow: x0 = x_t - t v, eps = x_t + (1 - t) v.
    x_t, v = _data(seed=3)
    t = jnp.array([0.1, 0.4, 0.6, 0.9])
    tt = t[:, None, None]
    x0, eps = to_x0_eps(RectifiedFlow(), "flow", v, x_t, t)
    np.testing.assert_allclose(x0, x_t - tt * v, atol=1e-6)
    np.testing.assert_allclose(eps, x_t + (1 - tt) * v, atol=1e-6)


def test_unknown_prediction_and_weighting():
    x0, eps = _data()
    with pytest.raises(ValueError, match="flow"):
        target(RectifiedFlow(), "score", x0, eps, 0.5)
    with pytest.raises(ValueError, match="min_snr"):
        loss_weight(RectifiedFlow(), "flow", 0.5, "p2")


def _oracle(process, prediction, x0):
    """A perfect model: knows x0, so recovers eps from x_t and returns the exact target."""

    def model_fn(x_t, t):
        a = process.alpha(t)[:, None, None, None]
        s = process.sigma(t)[:, None, None, None]
        eps = (x_t - a * x0) / s
        return target(process, prediction, x0, eps, t)

    return model_fn


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_perfect_model_has_zero_loss(case):
    process, prediction = case
    x0, _ = _data((8, 4, 3, 2))
    for weighting in WEIGHTINGS:
        loss, aux = diffusion_loss(
            _oracle(process, prediction, x0), x0, jax.random.key(1),
            process=process, prediction=prediction, weighting=weighting,
        )
        assert loss.shape == (8,) and aux["t"].shape == (8,) and aux["mse"].shape == (8,)
        assert float(jnp.max(loss)) < 1e-8
        assert float(jnp.max(aux["mse"])) < 1e-8


def test_zero_model_loss_is_mean_square_of_target():
    x0, _ = _data((8, 4, 3, 2))
    loss, aux = diffusion_loss(
        lambda x, t: jnp.zeros_like(x), x0, jax.random.key(0), process="flow", prediction="x0"
    )
    np.testing.assert_allclose(loss, jnp.mean(x0**2, axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(loss, aux["mse"])
    t = np.asarray(aux["t"])
    assert np.all((t > 0) & (t < 1)) and len(np.unique(t)) == 8


def test_mask_normalises_by_counted_entries():
    # Frame f of every example holds the constant f + 1, so the zero model's
    # squared error on frame f is (f + 1)^2 everywhere in it.
    b, frames, h, w = 3, 4, 2, 5
    x0 = jnp.broadcast_to(jnp.arange(1.0, frames + 1)[None, :, None, None], (b, frames, h, w))
    mask = jnp.array([[1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], jnp.float32)[:, :, None, None]
    loss, _ = diffusion_loss(
        lambda x, t: jnp.zeros_like(x), x0, jax.random.key(0),
        process="vp_cosine", prediction="x0", mask=mask,
    )
    np.testing.assert_allclose(loss, [1.0, (9.0 + 16.0) / 2, 0.0], rtol=1e-6)


def test_min_snr_weights_match_paper_closed_forms():
    t = jnp.linspace(0.02, 0.98, 49)
    vp, rf = VPCosine(), RectifiedFlow()
    snr = np.asarray(vp.snr(t))
    clipped = np.minimum(snr, 5.0)
    np.testing.assert_allclose(loss_weight(vp, "eps", t, "min_snr"), clipped / snr, rtol=1e-5)
    np.testing.assert_allclose(loss_weight(vp, "v", t, "min_snr"), clipped / (snr + 1), rtol=1e-5)
    np.testing.assert_allclose(loss_weight(vp, "x0", t, "min_snr"), clipped, rtol=1e-5)
    snr_rf = np.asarray(rf.snr(t))
    np.testing.assert_allclose(
        loss_weight(rf, "flow", t, "min_snr"),
        np.asarray(t) ** 2 * np.minimum(snr_rf, 5.0), rtol=1e-5,
    )
    np.testing.assert_array_equal(loss_weight(rf, "flow", t, "none"), np.ones(49))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_velocity_weighting_gives_the_implied_velocity_error(case):
    # Reference: turn an arbitrary network output into the velocity it implies at x_t
    # (via the (x0, eps) solve) and take its squared error against the true velocity.
    process, prediction = case
    shape = (6, 4, 3, 2)
    x0, _ = _data(shape)
    out = jax.random.normal(jax.random.key(7), shape)
    t = jnp.array([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
    eps = jax.random.normal(jax.random.key(8), shape)
    loss, _ = diffusion_loss(lambda x, tt: out, x0, None, process=process, prediction=prediction,
                             weighting="velocity", noise=(t, eps))
    x_t = process.add_noise(x0, eps, t)
    x0_hat, eps_hat = to_x0_eps(process, prediction, out, x_t, t)
    v_hat = target(process, "flow", x0_hat, eps_hat, t)
    v_true = target(process, "flow", x0, eps, t)
    np.testing.assert_allclose(loss, jnp.mean(jnp.square(v_hat - v_true), axis=(1, 2, 3)), rtol=1e-4)


def test_velocity_weighting_closed_forms_and_bound():
    rf = RectifiedFlow()
    t = jnp.linspace(0.1, 0.9, 9)
    np.testing.assert_array_equal(loss_weight(rf, "flow", t, "velocity"), np.ones(9))
    np.testing.assert_allclose(loss_weight(rf, "x0", t, "velocity"), 1 / np.asarray(t) ** 2, rtol=1e-5)
    np.testing.assert_allclose(loss_weight(rf, "eps", t, "velocity"), 1 / (1 - np.asarray(t)) ** 2,
                               rtol=1e-5)
    # Near the singular ends the weight is that of the clipped time, finite.
    floor = VELOCITY_WEIGHT_T_FLOOR
    np.testing.assert_allclose(loss_weight(rf, "x0", jnp.array([1e-5, 0.0]), "velocity"),
                               [floor**-2] * 2, rtol=1e-5)
    np.testing.assert_allclose(loss_weight(rf, "eps", jnp.array([1.0 - 1e-5]), "velocity"),
                               [floor**-2], rtol=1e-4)


def test_weighted_loss_is_weight_times_mse():
    x0, _ = _data((8, 4, 3, 2))
    loss, aux = diffusion_loss(
        lambda x, t: jnp.zeros_like(x), x0, jax.random.key(0),
        process="vp_cosine", prediction="eps", weighting="min_snr",
    )
    expected = loss_weight(VPCosine(), "eps", aux["t"], "min_snr")
    np.testing.assert_allclose(aux["weight"], expected, rtol=1e-6)
    np.testing.assert_allclose(loss, expected * aux["mse"], rtol=1e-6)
    assert not np.allclose(loss, aux["mse"])


def test_loss_jits_and_differentiates():
    x0, _ = _data((8, 4, 3, 2))

    def mean_loss(w, key):
        loss, _ = diffusion_loss(lambda x, t: w * x, x0, key, process="flow", time_shift=3.0)
        return loss.mean()

    key = jax.random.key(4)
    value, grad = jax.jit(jax.value_and_grad(mean_loss))(0.5, key)
    np.testing.assert_allclose(value, mean_loss(0.5, key), rtol=1e-5)
    h = 1e-2
    fd = (mean_loss(0.5 + h, key) - mean_loss(0.5 - h, key)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-3)


def test_low_precision_data_gives_float32_loss():
    x0, _ = _data((4, 3, 2))
    loss, aux = diffusion_loss(
        lambda x, t: x, x0.astype(jnp.bfloat16), jax.random.key(0), process="flow"
    )
    assert loss.dtype == jnp.float32 and aux["t"].dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(loss)))
