"""Samplers and guidance, checked on Gaussian data where everything is closed form.

Data x0 ~ N(MU, COV) in 2-d with correlated COV. Then x_t ~ N(a MU, a^2 COV + s^2 I)
and the optimal denoiser is exact:

    E[x0  | x_t] = MU + a COV (a^2 COV + s^2 I)^-1 (x_t - a MU)
    E[eps | x_t] =      s     (a^2 COV + s^2 I)^-1 (x_t - a MU)

so every sampler can be run with a perfect model. The flow ODE also has an exact
solution: in COV's eigenbasis each component of x_t - a MU is its standard
deviation sqrt(a^2 lam + s^2) times a constant, which gives the exact noise ->
data map the deterministic samplers must converge to.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm.diffusion import cfg_combine, multi_guidance
from vdm.diffusion.samplers import ddim, ddpm, euler, heun, sample
from vdm.diffusion.schedules import RectifiedFlow, VPCosine

MU = np.array([1.0, -0.5], np.float32)
COV = np.array([[1.0, 0.6], [0.6, 0.5]], np.float32)  # correlation 0.85
N_SAMPLES = 4000


def gaussian_model(process, prediction):
    """The exact model output for Gaussian data; written out per prediction."""
    mu, cov = jnp.asarray(MU), jnp.asarray(COV)

    def model_fn(x, t):  # x [B, 2], t [B]
        a, s = process.alpha(t)[:, None], process.sigma(t)[:, None]  # [B, 1]
        da, ds = process.d_alpha(t)[:, None], process.d_sigma(t)[:, None]
        # w = (a^2 COV + s^2 I)^-1 (x - a MU), with the symmetric 2x2 inverse
        # written out (much cheaper to compile than a batched solve).
        p, q, r = a**2 * cov[0, 0] + s**2, a**2 * cov[0, 1], a**2 * cov[1, 1] + s**2  # [B, 1]
        y = x - a * mu  # [B, 2]
        w = jnp.concatenate([r * y[:, :1] - q * y[:, 1:], p * y[:, 1:] - q * y[:, :1]], 1)
        w = w / (p * r - q * q)  # [B, 2]
        x0, eps = mu + a * (w @ cov), s * w
        return {
            "flow": da * x0 + ds * eps,
            "eps": eps,
            "v": a * eps - s * x0,
            "x0": x0,
        }[prediction]

    return model_fn


def exact_flow_map(process, noise):
    """Where the flow ODE takes x_1 = noise at t = 0 (float64)."""
    lam, u = np.linalg.eigh(COV.astype(np.float64))
    a1, s1 = float(process.alpha(1.0)), float(process.sigma(1.0))
    y = (np.asarray(noise, np.float64) - a1 * MU) @ u
    return MU + (y * np.sqrt(lam / (a1**2 * lam + s1**2))) @ u.T


@pytest.fixture(scope="module")
def noise():
    return jax.random.normal(jax.random.key(0), (N_SAMPLES, 2))


# (process, prediction, sampler, num_steps, eta): every prediction type and
# both processes appear at least once.
STAT_CASES = [
    (RectifiedFlow(), "flow", "euler", 100, 0.0),
    (RectifiedFlow(), "flow", "heun", 30, 0.0),
    (VPCosine(), "v", "heun", 30, 0.0),
    (VPCosine(), "eps", "ddim", 100, 0.0),
    (VPCosine(), "x0", "ddim", 200, 1.0),
    (VPCosine(), "eps", "ddpm", 200, 0.0),
    (RectifiedFlow(), "flow", "ddpm", 200, 0.0),
]


@pytest.mark.parametrize(
    "case", STAT_CASES, ids=lambda c: f"{c[0].name}-{c[1]}-{c[2]}{c[3]}-eta{c[4]}"
)
def test_samplers_reproduce_gaussian_statistics(case, noise):
    process, prediction, sampler, steps, eta = case
    out = sample(
        gaussian_model(process, prediction), noise, process=process, prediction=prediction,
        sampler=sampler, num_steps=steps, eta=eta, key=jax.random.key(1),
    )
    out = np.asarray(out, np.float64)
    assert out.shape == noise.shape and np.all(np.isfinite(out))
    # With 4000 samples the standard error of a mean is <= 0.016 and the sample
    # covariance's relative (Frobenius) error is ~0.03; the input noise itself
    # (mean 0, cov I) is off by 1.0 and 0.8 on these measures.
    assert np.max(np.abs(out.mean(0) - MU)) < 0.05
    assert np.linalg.norm(np.cov(out.T) - COV) / np.linalg.norm(COV) < 0.10


def _flow_map_error(sampler_fn, process, prediction, steps, noise):
    out = sampler_fn(
        gaussian_model(process, prediction), noise, process=process,
        prediction=prediction, num_steps=steps,
    )
    return np.max(np.abs(np.asarray(out, np.float64) - exact_flow_map(process, noise)))


def test_deterministic_samplers_converge_to_exact_flow_map(noise):
    x, rf, vp = noise[:256], RectifiedFlow(), VPCosine()
    # Observed errors are about half of these bounds.
    assert _flow_map_error(euler, vp, "eps", 100, x) < 0.03
    assert _flow_map_error(heun, vp, "v", 30, x) < 0.02
    assert _flow_map_error(ddim, vp, "eps", 100, x) < 0.1
    assert _flow_map_error(ddim, rf, "x0", 100, x) < 0.1


def test_convergence_orders(noise):
    # Halving the step size halves Euler's error (first order) and quarters
    # Heun's (second order).
    x, rf = noise[:256], RectifiedFlow()
    euler_50, euler_100 = (_flow_map_error(euler, rf, "flow", n, x) for n in (50, 100))
    heun_15, heun_30 = (_flow_map_error(heun, rf, "flow", n, x) for n in (15, 30))
    assert euler_100 < 0.1 and heun_30 < 0.01  # observed: 0.047, 0.0045
    assert 1.7 < euler_50 / euler_100 < 2.3, (euler_50, euler_100)
    assert 3.3 < heun_15 / heun_30 < 4.7, (heun_15, heun_30)


def test_euler_equals_ddim_for_rectified_flow(noise):
    rf = RectifiedFlow()
    kw = dict(process=rf, prediction="flow", num_steps=20)
    model = gaussian_model(rf, "flow")
    np.testing.assert_allclose(euler(model, noise, **kw), ddim(model, noise, **kw), atol=1e-5)


def test_ddpm_equals_ddim_eta_one(noise):
    vp = VPCosine()
    kw = dict(process=vp, prediction="eps", num_steps=50, key=jax.random.key(7))
    model = gaussian_model(vp, "eps")
    np.testing.assert_allclose(
        ddpm(model, noise, **kw), ddim(model, noise, eta=1.0, **kw), atol=1e-4
    )


@pytest.mark.parametrize("sampler", ["heun", "ddim"])  # heun's first stage is euler
def test_deterministic_samplers_repeat_bitwise(sampler, noise):
    rf = RectifiedFlow()
    kw = dict(process=rf, prediction="flow", sampler=sampler, num_steps=8)
    model = gaussian_model(rf, "flow")
    a, b = sample(model, noise, **kw), sample(model, noise, **kw)
    np.testing.assert_array_equal(a, b)


def test_stochastic_samplers_follow_key(noise):
    vp = VPCosine()
    kw = dict(process=vp, prediction="v", sampler="ddpm", num_steps=8)
    model = gaussian_model(vp, "v")
    a = sample(model, noise, key=jax.random.key(1), **kw)
    np.testing.assert_array_equal(a, sample(model, noise, key=jax.random.key(1), **kw))
    assert not np.allclose(a, sample(model, noise, key=jax.random.key(2), **kw))


@pytest.mark.parametrize("sampler,eta", [("heun", 0.0), ("ddim", 0.5)])
def test_sampler_jits(sampler, eta, noise):
    vp = VPCosine()
    kw = dict(process=vp, prediction="eps", sampler=sampler, num_steps=10, eta=eta)
    model = gaussian_model(vp, "eps")
    run = jax.jit(lambda n, k: sample(model, n, key=k, **kw))
    key = jax.random.key(3)
    np.testing.assert_allclose(run(noise, key), sample(model, noise, key=key, **kw), atol=1e-5)


def test_sample_argument_errors(noise):
    rf = RectifiedFlow()
    model = gaussian_model(rf, "flow")
    kw = dict(process=rf, prediction="flow", num_steps=4)
    with pytest.raises(ValueError, match="euler"):
        sample(model, noise, sampler="dpm", **kw)
    with pytest.raises(ValueError, match="key"):
        sample(model, noise, sampler="ddpm", **kw)
    with pytest.raises(ValueError, match="key"):
        sample(model, noise, sampler="ddim", eta=1.0, **kw)
    with pytest.raises(ValueError, match="eta"):
        sample(model, noise, sampler="euler", eta=1.0, **kw)


@pytest.mark.parametrize("sampler", ["euler", "heun", "ddpm"])
def test_clamp_reproduces_known_entries_and_noises_them_correctly(sampler, noise):
    # Known: the first coordinate (think: a given frame). Every model call must
    # see it as alpha(t) known + sigma(t) noise, and the output must hold it exactly.
    vp = VPCosine()
    x = noise[:64]
    known = jnp.zeros_like(x).at[:, 0].set(jnp.linspace(-2.0, 2.0, 64))
    mask = jnp.array([1.0, 0.0])  # broadcasts against [B, 2]
    calls = []

    def spy_model(x_t, t):
        jax.debug.callback(lambda a, b: calls.append((np.asarray(a), np.asarray(b))), x_t, t)
        return gaussian_model(vp, "eps")(x_t, t)

    steps = 12
    out = sample(
        spy_model, x, process=vp, prediction="eps", sampler=sampler, num_steps=steps,
        key=jax.random.key(5), clamp=(known, mask),
    )
    np.testing.assert_array_equal(out[:, 0], known[:, 0])
    assert not np.allclose(out[:, 1], x[:, 1])  # the unknown part was sampled
    assert len(calls) == (2 * steps - 1 if sampler == "heun" else steps)
    for x_t, t in calls:
        expected = vp.alpha(t[0]) * known[:, 0] + vp.sigma(t[0]) * x[:, 0]
        np.testing.assert_allclose(x_t[:, 0], expected, atol=1e-6)


def test_cfg_combine():
    cond, uncond = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.5, -1.0, 3.0])
    np.testing.assert_array_equal(cfg_combine(cond, uncond, 1.0), cond)
    np.testing.assert_array_equal(cfg_combine(cond, uncond, 0.0), uncond)
    np.testing.assert_allclose(cfg_combine(cond, uncond, 3.0), [2.0, 8.0, 3.0])


def test_multi_guidance():
    none, c1, c12 = jnp.array([0.0, 1.0]), jnp.array([1.0, 3.0]), jnp.array([4.0, 2.0])
    outs = [none, c1, c12]
    np.testing.assert_allclose(multi_guidance(outs, [1.0, 1.0]), c12)
    np.testing.assert_allclose(multi_guidance(outs, [0.0, 0.0]), none)
    # s1 = 2, s2 = 1.5:  none + 2 (c1 - none) + 1.5 (c12 - c1)
    np.testing.assert_allclose(multi_guidance(outs, [2.0, 1.5]), [2.0 + 4.5, 1.0 + 4.0 - 1.5])
    np.testing.assert_allclose(multi_guidance(outs[:2], [3.0]), cfg_combine(c1, none, 3.0))
    with pytest.raises(ValueError):
        multi_guidance(outs, [1.0])


def test_sample_keeps_noise_dtype(noise):
    rf = RectifiedFlow()
    seen = []

    def model(x_t, t):
        seen.append((x_t.dtype, t.dtype))
        return gaussian_model(rf, "flow")(x_t, t)

    out = sample(model, noise[:16].astype(jnp.bfloat16), process=rf, num_steps=4)
    assert out.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(out, np.float32)))
    assert seen == [(jnp.float32, jnp.float32)]  # the model sees the float32 state


def test_guidance_weights_reproduce_multi_guidance():
    from vdm.diffusion import guidance_weights

    outs = [np.array([1.0]), np.array([3.0]), np.array([4.0]), np.array([8.0])]
    for scales in ([2.0, 1.5, 3.0], [1.0, 1.0, 1.0], [0.0, 2.0, 1.0]):
        w = guidance_weights(scales)
        np.testing.assert_allclose(sum(wi * o for wi, o in zip(w, outs)), multi_guidance(outs, scales))
    assert guidance_weights([1.0, 1.0]) == [0.0, 0.0, 1.0]  # all ones: only the full output
    assert guidance_weights([1.0, 4.0]) == [0.0, -3.0, 4.0]  # the unconditional one is not needed


def test_sampling_times_from_t_start():
    from vdm.diffusion import sampling_times, shift_time

    t = np.asarray(sampling_times(10, 3.0, t_start=0.5))
    assert t[0] == np.float32(0.5) and t[-1] == 0.0 and (np.diff(t) < 0).all()
    # The same warp as the full schedule: unshifted times are evenly spaced.
    u = t / (3.0 - 2.0 * t)
    np.testing.assert_allclose(np.diff(u), np.diff(u)[0], rtol=1e-4)
    np.testing.assert_allclose(shift_time(u, 3.0), t, rtol=1e-5)
    with pytest.raises(ValueError, match="t_start"):
        sampling_times(4, 1.0, t_start=0.0)


def test_sdedit_starts_from_the_noised_source():
    # A model with zero velocity keeps its start: the output is the first state,
    # x = (1 - s) src + s noise at strength s (rectified flow).
    src = jnp.full((1, 4), 2.0)
    noise = jnp.ones((1, 4))

    def still(x, t):
        return jnp.zeros_like(x)

    for s in (0.25, 1e-6):
        out = sample(still, noise, process="flow", prediction="flow", num_steps=3, init=src, strength=s)
        np.testing.assert_allclose(out, (1 - s) * 2.0 + s * 1.0, rtol=1e-6)
    # A model that predicts x0 = 0 reaches 0 from any strength.
    to_zero = sample(lambda x, t: x / t[:, None], noise, process="flow", prediction="flow", num_steps=3,
                     init=src, strength=0.5)
    np.testing.assert_allclose(to_zero, 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="init"):
        sample(still, noise, process="flow", prediction="flow", num_steps=2, strength=0.5)
