"""Samplers: from noise at t = 1 to data at t = 0, each one `jax.lax.scan`.

Every sampler takes a generic denoiser model_fn(x_t [B, ...], t [B]) -> model_out,
turns its output into (x0_hat, eps_hat) with `to_x0_eps`, and steps along the
grid `sampling_times(num_steps, shift)`. They are pure and jittable (num_steps,
process, prediction and the sampler choice are static). Guidance lives in
guidance.py: wrap model_fn before calling these.

The deterministic samplers integrate the flow ODE

    dx/dt = u(x, t) = alpha'(t) x0_hat + sigma'(t) eps_hat,

whose solution has the same marginals as the noise process for any
(alpha, sigma): u is E[d x_t / dt | x_t]. For VP processes it is the
probability-flow ODE.

init, strength (SDEdit): start from clean data `init` noised to t = strength,
x = alpha(strength) init + sigma(strength) noise, and integrate from there to
0 in num_steps steps. strength 1 is plain sampling (init is then ignored);
strength -> 0 returns init.

clamp = (known_x0, known_mask), both broadcastable to the noise: before every
model call the entries where known_mask != 0 are replaced by the known data
noised to the current time with the fixed initial noise,
alpha(t) known_x0 + sigma(t) noise, and the returned sample holds known_x0
exactly there (replacement conditioning, e.g. given first frames).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from vdm.diffusion.losses import check_prediction, to_x0_eps
from vdm.diffusion.schedules import Process, as_process, sampling_times

ModelFn = Callable[[jax.Array, jax.Array], jax.Array]
Clamp = tuple[jax.Array, jax.Array] | None

SAMPLERS = ("euler", "heun", "ddim", "ddpm")

# The ODE state accumulates many small steps; it is kept in float32 and cast to
# the noise dtype only at the end.
_STATE_DTYPE = jnp.float32


def _clamp(process: Process, x, t, clamp: Clamp, noise):
    """x with its known entries set to the known data noised to time t."""
    if clamp is None:
        return x
    known, mask = clamp
    noised = process.alpha(t) * known + process.sigma(t) * noise
    return jnp.where(jnp.asarray(mask) != 0, noised, x).astype(x.dtype)


def _denoiser(model_fn: ModelFn, process: Process, prediction: str, clamp: Clamp, noise):
    """(x [B, ...], t scalar) -> (clamped x, x0_hat, eps_hat), all [B, ...] float32."""

    def denoise(x, t):
        x = _clamp(process, x, t, clamp, noise)
        t_batch = jnp.full((x.shape[0],), t, jnp.float32)  # [B]
        out = model_fn(x, t_batch)
        x0, eps = to_x0_eps(process, prediction, out.astype(_STATE_DTYPE), x, t_batch)
        return x, x0, eps

    return denoise


def _velocity(process: Process, t, x0, eps):
    """Flow ODE velocity u = alpha'(t) x0 + sigma'(t) eps; t scalar."""
    return process.d_alpha(t) * x0 + process.d_sigma(t) * eps


def _run(step, process, noise, num_steps, shift, clamp, key, init=None, strength=1.0):
    """Scan `step(x, (t, t_next, key)) -> x` over the grid; return the sample."""
    times = sampling_times(num_steps, shift, strength)  # [N + 1]
    if key is None:
        key = jax.random.key(0)  # only deterministic samplers get here
    keys = jax.random.split(key, num_steps)  # [N]
    x = noise.astype(_STATE_DTYPE)
    if strength < 1.0:
        if init is None:
            raise ValueError(f"strength={strength} < 1 needs the clean data to start from (init)")
        if init.shape != noise.shape:
            raise ValueError(f"init {init.shape} must have the noise's shape {noise.shape}")
        x = process.alpha(times[0]) * jnp.asarray(init, _STATE_DTYPE) + process.sigma(times[0]) * x

    def body(x, xs):
        return step(x, xs), None

    x, _ = jax.lax.scan(body, x, (times[:-1], times[1:], keys))
    x = x.astype(noise.dtype)
    if clamp is not None:
        known, mask = clamp
        x = jnp.where(jnp.asarray(mask) != 0, jnp.asarray(known).astype(noise.dtype), x)
    return x


def _prepare(process, prediction, noise, clamp):
    process = as_process(process)
    check_prediction(prediction)
    noise = jnp.asarray(noise)
    if clamp is not None:
        known, mask = clamp
        clamp = (jnp.asarray(known, _STATE_DTYPE), jnp.asarray(mask))
    return process, noise, clamp


def euler(
    model_fn: ModelFn,
    noise: jax.Array,
    *,
    process: Process | str,
    prediction: str,
    num_steps: int,
    shift: float = 1.0,
    clamp: Clamp = None,
    init: jax.Array | None = None,
    strength: float = 1.0,
) -> jax.Array:
    """Explicit Euler on the flow ODE: x' = x + (t' - t) u(x, t). num_steps model calls.

    For RectifiedFlow this is the same step as re-noising the prediction,
    x' = alpha(t') x0_hat + sigma(t') eps_hat (= DDIM): with x = (1 - t) x0_hat
    + t eps_hat and u = eps_hat - x0_hat, x + (t' - t) u = (1 - t') x0_hat
    + t' eps_hat. For curved processes (VP) it is the plain Euler step in t,
    which differs from DDIM; use `ddim` for the re-noising step.
    """
    process, noise, clamp = _prepare(process, prediction, noise, clamp)
    denoise = _denoiser(model_fn, process, prediction, clamp, noise)

    def step(x, xs):
        t, t_next, _ = xs
        x, x0, eps = denoise(x, t)
        return x + (t_next - t) * _velocity(process, t, x0, eps)

    return _run(step, process, noise, num_steps, shift, clamp, None, init, strength)


def heun(
    model_fn: ModelFn,
    noise: jax.Array,
    *,
    process: Process | str,
    prediction: str,
    num_steps: int,
    shift: float = 1.0,
    clamp: Clamp = None,
    init: jax.Array | None = None,
    strength: float = 1.0,
) -> jax.Array:
    """Heun (trapezoidal predictor-corrector) on the flow ODE; 2 num_steps - 1 model calls.

    Second order. The last step, into t = 0, is plain Euler (as in Karras et al.
    2022): the model is never evaluated at t = 0, where 'x0' and 'eps' inversions
    are singular.
    """
    process, noise, clamp = _prepare(process, prediction, noise, clamp)
    denoise = _denoiser(model_fn, process, prediction, clamp, noise)

    def step(x, xs):
        t, t_next, _ = xs
        x, x0, eps = denoise(x, t)
        d1 = _velocity(process, t, x0, eps)
        x_euler = x + (t_next - t) * d1

        def correct():
            _, x0_2, eps_2 = denoise(x_euler, t_next)
            d2 = _velocity(process, t_next, x0_2, eps_2)
            return x + (t_next - t) * 0.5 * (d1 + d2)

        # cond, not where: the Euler-only last step skips the second model call.
        return jax.lax.cond(t_next > 0, correct, lambda: x_euler)

    return _run(step, process, noise, num_steps, shift, clamp, None, init, strength)


def ddim(
    model_fn: ModelFn,
    noise: jax.Array,
    *,
    process: Process | str,
    prediction: str,
    num_steps: int,
    shift: float = 1.0,
    eta: float = 0.0,
    key: jax.Array | None = None,
    clamp: Clamp = None,
    init: jax.Array | None = None,
    strength: float = 1.0,
) -> jax.Array:
    """DDIM (Song et al. 2021), written for any (alpha, sigma); num_steps model calls.

        x' = alpha' x0_hat + sqrt(sigma'^2 - c^2) eps_hat + c z,   z ~ N(0, I)
        c  = eta sigma' sqrt(1 - r^2),   r = (sigma' / alpha') / (sigma / alpha)

    (primes: at the next time t' < t; eta in [0, 1]). c is DDIM's sigma_t,
    written with alpha and sigma instead of alpha_bar = alpha^2 so it holds for
    any process. eta = 0 is deterministic (re-noise the prediction with its own
    eps_hat), eta = 1 is DDPM's ancestral step. eta > 0 needs `key`.
    """
    if key is None and not (isinstance(eta, (int, float)) and eta == 0):
        raise ValueError("ddim with eta != 0 is stochastic and needs a key")
    process, noise, clamp = _prepare(process, prediction, noise, clamp)
    denoise = _denoiser(model_fn, process, prediction, clamp, noise)

    def step(x, xs):
        t, t_next, step_key = xs
        x, x0, eps = denoise(x, t)
        a, s = process.alpha(t), process.sigma(t)
        a_next, s_next = process.alpha(t_next), process.sigma(t_next)
        r = (s_next * a) / (a_next * s)  # in [0, 1): noise-to-signal ratio falls
        c2 = jnp.square(eta) * (1.0 - jnp.square(r))  # (c / sigma')^2
        z = jax.random.normal(step_key, x.shape, x.dtype)
        return a_next * x0 + s_next * (jnp.sqrt(1.0 - c2) * eps + jnp.sqrt(c2) * z)

    return _run(step, process, noise, num_steps, shift, clamp, key, init, strength)


def ddpm(
    model_fn: ModelFn,
    noise: jax.Array,
    *,
    process: Process | str,
    prediction: str,
    num_steps: int,
    key: jax.Array,
    shift: float = 1.0,
    clamp: Clamp = None,
    init: jax.Array | None = None,
    strength: float = 1.0,
) -> jax.Array:
    """DDPM ancestral sampling (Ho et al. 2020); num_steps model calls.

    Samples the Gaussian posterior q(x_t' | x_t, x0 = x0_hat) of the forward
    process. With alpha_{t|t'} = alpha / alpha' and
    sigma_{t|t'}^2 = sigma^2 - alpha_{t|t'}^2 sigma'^2 (Kingma et al. 2021):

        mean = alpha' sigma_{t|t'}^2 / sigma^2 x0_hat + alpha_{t|t'} sigma'^2 / sigma^2 x_t
        var  = sigma_{t|t'}^2 sigma'^2 / sigma^2

    Written from (x_t, x0_hat), independently of `ddim`, to which it is
    equal in exact arithmetic at eta = 1.
    """
    if key is None:
        raise ValueError("ddpm is stochastic and needs a key")
    process, noise, clamp = _prepare(process, prediction, noise, clamp)
    denoise = _denoiser(model_fn, process, prediction, clamp, noise)

    def step(x, xs):
        t, t_next, step_key = xs
        x, x0, _ = denoise(x, t)
        a, s = process.alpha(t), process.sigma(t)
        a_next, s_next = process.alpha(t_next), process.sigma(t_next)
        a_ts = a / a_next
        var_ts = jnp.maximum(jnp.square(s) - jnp.square(a_ts * s_next), 0.0)
        mean = (a_next * var_ts / jnp.square(s)) * x0 + (a_ts * jnp.square(s_next / s)) * x
        std = jnp.sqrt(var_ts) * s_next / s
        return mean + std * jax.random.normal(step_key, x.shape, x.dtype)

    return _run(step, process, noise, num_steps, shift, clamp, key, init, strength)


def sample(
    model_fn: ModelFn,
    noise: jax.Array,
    *,
    process: Process | str,
    prediction: str = "flow",
    sampler: str = "euler",
    num_steps: int,
    shift: float = 1.0,
    eta: float = 0.0,
    key: jax.Array | None = None,
    clamp: Clamp = None,
    init: jax.Array | None = None,
    strength: float = 1.0,
) -> jax.Array:
    """Draw x0 samples of noise's shape with the named sampler (see SAMPLERS).

    `eta` is DDIM's only; `key` is needed by 'ddpm' and by 'ddim' with eta > 0.
    """
    common = dict(
        process=process, prediction=prediction, num_steps=num_steps, shift=shift, clamp=clamp,
        init=init, strength=strength,
    )
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; valid choices: {list(SAMPLERS)}")
    if sampler != "ddim" and isinstance(eta, (int, float)) and eta != 0:
        raise ValueError(f"eta is a ddim setting; sampler {sampler!r} does not use it")
    if sampler == "euler":
        return euler(model_fn, noise, **common)
    if sampler == "heun":
        return heun(model_fn, noise, **common)
    if sampler == "ddim":
        return ddim(model_fn, noise, eta=eta, key=key, **common)
    return ddpm(model_fn, noise, key=key, **common)
