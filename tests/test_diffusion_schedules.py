"""Noise processes, time shift and time sampling against their closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm.diffusion import schedules
from vdm.diffusion.schedules import (
    RectifiedFlow,
    VPCosine,
    get_process,
    sample_time,
    sampling_times,
    shift_for_tokens,
    shift_time,
)

PROCESSES = [RectifiedFlow(), VPCosine()]


def test_get_process_names_and_error():
    assert isinstance(get_process("flow"), RectifiedFlow)
    assert isinstance(get_process("vp_cosine"), VPCosine)
    with pytest.raises(ValueError, match="flow.*vp_cosine"):
        get_process("vp_linear_typo")


def test_processes_are_hashable_jit_statics():
    f = jax.jit(lambda t, p: p.alpha(t), static_argnums=1)
    np.testing.assert_allclose(f(0.25, RectifiedFlow()), 0.75)
    np.testing.assert_allclose(f(1.0 / 3.0, VPCosine()), np.cos(np.pi / 6), rtol=1e-6)


def test_flow_endpoints_are_data_and_noise():
    x0, eps = jnp.arange(6.0).reshape(2, 3), -jnp.ones((2, 3))
    p = RectifiedFlow()
    np.testing.assert_array_equal(p.add_noise(x0, eps, jnp.zeros(2)), x0)
    np.testing.assert_array_equal(p.add_noise(x0, eps, jnp.ones(2)), eps)


def test_add_noise_broadcasts_per_example_time():
    p = RectifiedFlow()
    x0, eps = jnp.ones((2, 3, 4)), jnp.zeros((2, 3, 4))
    out = p.add_noise(x0, eps, jnp.array([0.0, 0.5]))
    np.testing.assert_allclose(out[0], 1.0)
    np.testing.assert_allclose(out[1], 0.5)


def test_vp_cosine_is_variance_preserving_and_clipped():
    p = VPCosine()
    t = jnp.linspace(0.0, 1.0, 101)
    np.testing.assert_allclose(p.alpha(t) ** 2 + p.sigma(t) ** 2, 1.0, atol=1e-6)
    np.testing.assert_allclose(p.alpha(t[:-1]), np.cos(np.pi / 2 * np.asarray(t[:-1])), atol=1e-6)
    assert p.alpha(0.0) == 1.0 and p.sigma(0.0) == 0.0
    # Clipped near t = 1 so eps -> x0 never divides by zero, but still ~pure noise.
    assert 0.0 < float(p.alpha(1.0)) < 1e-3
    assert np.isfinite(float(p.snr(1.0)))


@pytest.mark.parametrize("p", PROCESSES, ids=lambda p: p.name)
def test_derivatives_match_finite_differences(p):
    t = jnp.linspace(0.05, 0.95, 19)
    h = 1e-3
    for f, df in [(p.alpha, p.d_alpha), (p.sigma, p.d_sigma)]:
        fd = (f(t + h) - f(t - h)) / (2 * h)
        np.testing.assert_allclose(df(t), fd, atol=1e-3)


def test_shift_time_fixed_points_monotone_and_identity():
    t = jnp.linspace(0.0, 1.0, 201)
    np.testing.assert_array_equal(shift_time(t, 1.0), t)
    for shift in [0.3, 2.0, 3.0, 8.0]:
        st = shift_time(t, shift)
        assert float(st[0]) == 0.0
        np.testing.assert_allclose(st[-1], 1.0, rtol=1e-6)
        assert np.all(np.diff(np.asarray(st)) > 0)
        # The shift multiplies the noise-to-signal ratio t / (1 - t) by `shift`.
        inner = t[1:-1]
        np.testing.assert_allclose(
            st[1:-1] / (1 - st[1:-1]), shift * inner / (1 - inner), rtol=1e-4
        )
        # ... so shifting by 1 / shift undoes it.
        np.testing.assert_allclose(shift_time(st, 1.0 / shift), t, atol=1e-6)
    # shift > 1 moves every interior time toward noise.
    assert np.all(np.asarray(shift_time(t[1:-1], 3.0)) > np.asarray(t[1:-1]))


def test_shift_for_tokens():
    assert shift_for_tokens(1024, 1024) == 1.0
    assert shift_for_tokens(4096, 1024, base_shift=1.5) == pytest.approx(3.0)
    assert shift_for_tokens(256, 1024) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        shift_for_tokens(0, 1024)


def test_sample_time_uniform():
    t = sample_time(jax.random.key(0), (100_000,), "uniform")
    assert t.shape == (100_000,) and t.dtype == jnp.float32
    lo, hi = np.float32(schedules.TIME_EPS), np.float32(1 - schedules.TIME_EPS)
    assert t.min() >= lo and t.max() <= hi and 0.0 < lo and hi < 1.0
    assert abs(float(t.mean()) - 0.5) < 0.005


def test_sample_time_logit_normal_moments():
    mean, std = 0.5, 0.8
    t = np.asarray(sample_time(jax.random.key(1), (100_000,), "logit_normal", mean, std))
    logit = np.log(t) - np.log1p(-t)
    # Standard errors are ~0.0025 here; tolerances are 4x that.
    assert abs(logit.mean() - mean) < 0.01
    assert abs(logit.std() - std) < 0.01
    assert abs(np.median(t) - 1 / (1 + np.exp(-mean))) < 0.01


def test_sample_time_shift_moves_median():
    t = np.asarray(sample_time(jax.random.key(2), (100_000,), "logit_normal", 0.0, 1.0, shift=3.0))
    assert abs(np.median(t) - float(shift_time(0.5, 3.0))) < 0.01  # 0.75
    assert t.min() > 0.0 and t.max() < 1.0


@pytest.mark.parametrize("mix", [0.0, 0.2, 1.0])
def test_sample_time_uniform_mix_closed_form(mix):
    # P(t < c) = mix * c + (1 - mix) * Phi(logit(unshift(c))) for the shifted logit-normal.
    from scipy.stats import norm

    t = np.asarray(sample_time(jax.random.key(3), (200_000,), "logit_normal", 0.0, 1.0, shift=3.0,
                               uniform_mix=mix))
    for c in (0.1, 0.3, 0.6, 0.9):
        u = float(schedules.unshift_time(c, 3.0))
        expected = mix * c + (1 - mix) * norm.cdf(np.log(u) - np.log1p(-u))
        assert abs((t < c).mean() - expected) < 0.005, (mix, c)


def test_sample_time_uniform_mix_out_of_range():
    with pytest.raises(ValueError, match="uniform_mix"):
        sample_time(jax.random.key(0), (3,), "logit_normal", uniform_mix=1.5)


def test_sample_time_unknown_kind():
    with pytest.raises(ValueError, match="logit_normal"):
        sample_time(jax.random.key(0), (3,), "beta")


@pytest.mark.parametrize("shift", [1.0, 3.0, 0.5, 3.3])
def test_sampling_times_grid(shift):
    t = sampling_times(10, shift)
    assert t.shape == (11,)
    assert float(t[0]) == 1.0 and float(t[-1]) == 0.0
    assert np.all(np.diff(np.asarray(t)) < 0)
    np.testing.assert_allclose(t, shift_time(np.linspace(1, 0, 11), shift), atol=1e-6)


def test_sampling_times_rejects_zero_steps():
    with pytest.raises(ValueError):
        sampling_times(0)
