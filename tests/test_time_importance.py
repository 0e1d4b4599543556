"""Training times drawn in proportion to density x loss weight (diffusion.time_importance):
the density of sample_time against its draws, the inverse-CDF sampler against a closed form,
and the expected loss against the plain estimator's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm.diffusion import diffusion_loss, draw_noise, loss_weight, sample_time, weighted_times
from vdm.diffusion.importance import WeightedTimes
from vdm.diffusion.schedules import time_density

EDGES = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0])


def _bin_mass(kind, mean, std, shift, mix):
    """Probability of each EDGES bin from the density (fine trapezoid per bin)."""
    out = []
    for lo, hi in zip(EDGES[:-1], EDGES[1:]):
        t = np.linspace(max(lo, 1e-9), min(hi, 1 - 1e-9), 4001)
        out.append(np.trapezoid(time_density(t, kind, mean, std, shift, mix), t))
    return np.array(out)


@pytest.mark.parametrize("kind,mean,std,shift,mix", [
    ("logit_normal", 0.0, 1.0, 3.0, 0.0),
    ("logit_normal", 0.5, 0.8, 1.0, 0.3),
    ("uniform", 0.0, 1.0, 2.0, 0.0),
])
def test_time_density_matches_sample_time_draws(kind, mean, std, shift, mix):
    t = np.asarray(sample_time(jax.random.key(0), (400_000,), kind, mean, std, shift, mix))
    empirical = np.histogram(t, EDGES)[0] / len(t)
    mass = _bin_mass(kind, mean, std, shift, mix)
    assert abs(mass.sum() - 1.0) < 1e-3
    np.testing.assert_allclose(mass, empirical, atol=0.003)


def test_time_density_bad_input():
    with pytest.raises(ValueError, match="time sampling 'normal'"):
        time_density(np.array([0.5]), "normal")
    with pytest.raises(ValueError, match="uniform_mix"):
        time_density(np.array([0.5]), "uniform", uniform_mix=-0.1)


def test_weighted_times_closed_form():
    # p = 1 on [0, 1] and w = 2t: q(t) = 2t, CDF t^2, E_p[w] = 1, so t = sqrt(u).
    grid = np.linspace(0.0, 1.0, 2001)
    sampler = WeightedTimes.build(grid, np.ones_like(grid), 2 * grid)
    assert abs(sampler.mean_weight - 1.0) < 1e-6
    t = np.asarray(sampler.sample(jax.random.key(0), (200_000,)))
    for q in (0.1, 0.25, 0.5, 0.9):
        assert abs(np.quantile(t, q) - np.sqrt(q)) < 0.005, q
    # An unnormalised density gives the same sampler and mean weight.
    scaled = WeightedTimes.build(grid, 5 * np.ones_like(grid), 2 * grid)
    assert abs(scaled.mean_weight - 1.0) < 1e-6
    np.testing.assert_allclose(scaled.cdf, sampler.cdf, atol=1e-12)


def test_weighted_times_bad_input():
    grid = np.linspace(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="one length"):
        WeightedTimes.build(grid, np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="increase"):
        WeightedTimes.build(grid[::-1], np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match=">= 0"):
        WeightedTimes.build(grid, -np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="integrates to 0"):
        WeightedTimes.build(grid, np.ones(5), np.zeros(5))


CASES = [  # (process, prediction, weighting, time kind, shift)
    ("flow", "x0", "velocity", "logit_normal", 3.0),  # the benchmark's
    ("vp_cosine", "eps", "min_snr", "uniform", 1.0),
]


@pytest.mark.parametrize("process,prediction,weighting,kind,shift", CASES)
def test_weighted_draws_keep_each_noise_levels_share_of_the_loss(process, prediction, weighting,
                                                                  kind, shift):
    # Independent reference: draws of sample_time weighted by loss_weight.
    t = sample_time(jax.random.key(1), (2_000_000,), kind, shift=shift)
    w = np.asarray(loss_weight(process, prediction, t, weighting))
    t = np.asarray(t)
    sampler = weighted_times(process, prediction, weighting, time_kind=kind, time_shift=shift)
    assert abs(sampler.mean_weight / w.mean() - 1.0) < 0.01
    q = np.asarray(sampler.sample(jax.random.key(2), (2_000_000,)))
    share_plain = np.array([w[(t >= lo) & (t < hi)].sum() for lo, hi in zip(EDGES[:-1], EDGES[1:])])
    share_plain /= w.sum()
    share_weighted = np.histogram(q, EDGES)[0] / len(q)  # every draw weighs the same
    np.testing.assert_allclose(share_weighted, share_plain, atol=0.006)


def test_benchmark_weighting_moves_draws_to_mid_noise():
    # What the option is for: at shift 3 with the x0 target's 1/t^2, t in [0.2, 0.5] gets
    # 13% of plain draws and a third of the weighted ones.
    plain = np.asarray(sample_time(jax.random.key(3), (400_000,), "logit_normal", shift=3.0))
    sampler = weighted_times("flow", "x0", "velocity", time_kind="logit_normal", time_shift=3.0)
    weighted = np.asarray(sampler.sample(jax.random.key(4), (400_000,)))
    mid = lambda t: np.mean((t >= 0.2) & (t < 0.5))  # noqa: E731
    assert 0.11 < mid(plain) < 0.15
    assert 0.31 < mid(weighted) < 0.36


def test_diffusion_loss_with_importance_has_the_plain_expected_loss():
    # A fixed imperfect model: both estimators of E[w mse] agree; the weighted one's
    # examples all weigh the same.
    x0 = jnp.tile(jnp.linspace(-1.0, 1.0, 4), (200_000, 1))  # [B, 4]
    kw = dict(process="flow", prediction="x0", weighting="velocity", time_shift=3.0)
    model = lambda x, t: 0.8 * x  # noqa: E731
    plain, plain_aux = diffusion_loss(model, x0, jax.random.key(5), **kw)
    weighted, aux = diffusion_loss(model, x0, jax.random.key(6), time_importance=True, **kw)
    mean_weight = weighted_times("flow", "x0", "velocity", time_shift=3.0).mean_weight
    np.testing.assert_allclose(aux["weight"], mean_weight, rtol=1e-6)
    np.testing.assert_allclose(weighted, aux["weight"] * aux["mse"], rtol=1e-6)
    assert abs(float(weighted.mean()) / float(plain.mean()) - 1.0) < 0.02
    assert float(plain_aux["weight"].max()) > 50 * mean_weight  # the heavy draws it removes


def test_draw_noise_importance_is_deterministic_and_jits():
    x0 = jnp.zeros((16, 2, 3))
    kw = dict(time_importance=True, process="flow", prediction="x0", weighting="velocity",
              time_shift=3.0)
    t, eps = jax.jit(lambda k: draw_noise(k, x0, **kw))(jax.random.key(7))
    t2, eps2 = draw_noise(jax.random.key(7), x0, **kw)
    np.testing.assert_allclose(t, t2, rtol=1e-6)
    np.testing.assert_array_equal(eps, eps2)
    assert t.shape == (16,) and np.all((np.asarray(t) > 0) & (np.asarray(t) < 1))
