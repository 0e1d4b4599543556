"""Prediction targets, their inversion, and the training loss.

With x_t = alpha x0 + sigma eps (see schedules.py), a network can be asked to
predict one of four linear combinations of (x0, eps):

    'flow'  the velocity d x_t / dt = alpha'(t) x0 + sigma'(t) eps
            (eps - x0 for RectifiedFlow)
    'eps'   the noise eps
    'v'     Salimans & Ho's v = alpha eps - sigma x0
    'x0'    the clean data x0

Together with x_t, any of them determines (x0, eps) through a 2x2 linear solve;
`to_x0_eps` does that solve, and the samplers only ever work with (x0, eps).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vdm.diffusion.importance import WeightedTimes
from vdm.diffusion.schedules import (
    TIME_EPS,
    Process,
    as_process,
    broadcast_like,
    sample_time,
    time_density,
)

PREDICTIONS = ("flow", "eps", "v", "x0")
WEIGHTINGS = ("none", "min_snr", "velocity")

# 'eps' divides by alpha, 'x0' by sigma; each is singular at one end of time
# (eps at t = 1 for the flow process, x0 at t = 0). The floor keeps the result
# finite there; the samplers never evaluate the model at t = 0.
_MIN_DENOM = 1e-8

# 'velocity' weighting evaluates its weight at t clipped to [floor, 1 - floor]: the x0 -> velocity
# factor 1 / t^2 of an x0 prediction is unbounded at t -> 0 (JiT clips the same denominator).
VELOCITY_WEIGHT_T_FLOOR = 0.05


def check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(
            f"unknown prediction {prediction!r}; valid choices: {list(PREDICTIONS)}"
        )


def _coefficients(process: Process, t, x: jax.Array):
    """alpha, sigma, alpha', sigma' at t, each broadcast against x."""
    return tuple(
        broadcast_like(f(t), x)
        for f in (process.alpha, process.sigma, process.d_alpha, process.d_sigma)
    )


def target(process: Process | str, prediction: str, x0: jax.Array, eps: jax.Array, t) -> jax.Array:
    """The regression target for `prediction`; x0, eps [B, ...], t [B] or scalar."""
    process = as_process(process)
    check_prediction(prediction)
    a, s, da, ds = _coefficients(process, t, x0)
    if prediction == "flow":
        return da * x0 + ds * eps
    if prediction == "eps":
        return eps
    if prediction == "v":
        return a * eps - s * x0
    return x0


def to_x0_eps(
    process: Process | str, prediction: str, model_out: jax.Array, x_t: jax.Array, t
) -> tuple[jax.Array, jax.Array]:
    """(x0_hat, eps_hat) consistent with x_t and the model's prediction.

    Solves  x_t = a x0 + s eps,  out = p x0 + q eps  for (x0, eps), where (p, q)
    are the prediction's coefficients. The pair always satisfies
    a x0_hat + s eps_hat = x_t, which is what makes the samplers' steps exact
    re-noisings.
    """
    process = as_process(process)
    check_prediction(prediction)
    a, s, da, ds = _coefficients(process, t, x_t)
    if prediction == "flow":
        # det = a sigma' - s alpha' (= 1 for RectifiedFlow, pi/2 for VPCosine).
        det = a * ds - s * da
        x0 = (ds * x_t - s * model_out) / det
        eps = (a * model_out - da * x_t) / det
    elif prediction == "v":
        # det = a^2 + s^2 (= 1 for VP, >= 1/2 for RectifiedFlow).
        det = a * a + s * s
        x0 = (a * x_t - s * model_out) / det
        eps = (s * x_t + a * model_out) / det
    elif prediction == "eps":
        eps = model_out
        x0 = (x_t - s * eps) / jnp.maximum(a, _MIN_DENOM)
    else:
        x0 = model_out
        eps = (x_t - a * x0) / jnp.maximum(s, _MIN_DENOM)
    return x0, eps


def _x0_error_scale(process: Process, prediction: str, t) -> jax.Array:
    """c(t) with |pred error|^2 = c(t) |x0 error|^2 at fixed x_t; shape of t.

    From to_x0_eps: x0 error = -(s / det) * pred error for 'flow' and 'v',
    -(s / a) * eps error for 'eps'.
    """
    a, s = process.alpha(t), process.sigma(t)
    if prediction == "flow":
        det = a * process.d_sigma(t) - s * process.d_alpha(t)
        return jnp.square(det / s)
    if prediction == "v":
        return jnp.square((a * a + s * s) / s)
    if prediction == "eps":
        return jnp.square(a / s)
    return jnp.ones_like(a)


def loss_weight(
    process: Process | str, prediction: str, t, weighting: str = "none", gamma: float = 5.0
) -> jax.Array:
    """Per-example weight of the squared prediction error; shape of t.

    'none': 1, i.e. plain regression of the prediction target.
    'min_snr' (Hang et al. 2023): weight the *x0* error by min(SNR, gamma), so
    that low-noise steps, which are easy and would dominate the gradient, are
    capped. Expressed for the chosen prediction this is min(SNR, gamma) / c(t)
    with c from `_x0_error_scale`; it reproduces the paper's min(SNR, g) / SNR
    for eps and min(SNR, g) / (SNR + 1) for v on a VP process, and gives
    t^2 min(SNR, g) for flow prediction on RectifiedFlow.
    'velocity': the squared error of the velocity d x_t / dt that the prediction implies at
    fixed x_t, whatever the network predicts: c_flow(t) / c(t), so 1 for flow prediction and
    1 / t^2 for x0 prediction on RectifiedFlow (Li & He 2025, "Back to Basics: Let Denoising
    Generative Models Denoise": predict x0, regress the velocity). Evaluated at t clipped to
    [VELOCITY_WEIGHT_T_FLOOR, 1 - VELOCITY_WEIGHT_T_FLOOR], which bounds it.
    """
    process = as_process(process)
    check_prediction(prediction)
    t = jnp.asarray(t, jnp.float32)
    if weighting == "none":
        return jnp.ones_like(t)
    if weighting == "min_snr":
        return jnp.minimum(process.snr(t), gamma) / _x0_error_scale(process, prediction, t)
    if weighting == "velocity":
        t = jnp.clip(t, VELOCITY_WEIGHT_T_FLOOR, 1.0 - VELOCITY_WEIGHT_T_FLOOR)
        return _x0_error_scale(process, "flow", t) / _x0_error_scale(process, prediction, t)
    raise ValueError(f"unknown loss weighting {weighting!r}; valid choices: {list(WEIGHTINGS)}")


# Grid of `weighted_times`: the inverse CDF is linear between these points.
IMPORTANCE_GRID_POINTS = 20001


# Cached: the loss asks for the table's mean weight and draw_noise for its sampler, once per
# micro-batch while the train step is traced.
@functools.lru_cache(maxsize=16)
def weighted_times(
    process: Process | str,
    prediction: str,
    weighting: str,
    min_snr_gamma: float = 5.0,
    *,
    time_kind: str = "logit_normal",
    time_mean: float = 0.0,
    time_std: float = 1.0,
    time_shift: float = 1.0,
    time_uniform_mix: float = 0.0,
) -> WeightedTimes:
    """`sample_time`'s density times `loss_weight`, as a sampler (vdm/diffusion/importance.py):
    times drawn from it, each weighted by E[weight], give the loss its expected value."""
    grid = np.linspace(TIME_EPS, 1.0 - TIME_EPS, IMPORTANCE_GRID_POINTS)
    density = time_density(grid, time_kind, time_mean, time_std, time_shift, time_uniform_mix)
    with jax.ensure_compile_time_eval():  # a table of constants, also when traced under jit
        weight = np.asarray(loss_weight(process, prediction, jnp.asarray(grid, jnp.float32),
                                        weighting, min_snr_gamma))
    return WeightedTimes.build(grid, density, weight)


def draw_noise(
    key: jax.Array,
    x0: jax.Array,
    *,
    time_kind: str = "logit_normal",
    time_mean: float = 0.0,
    time_std: float = 1.0,
    time_shift: float = 1.0,
    time_uniform_mix: float = 0.0,
    time_importance: bool = False,
    process: Process | str = "flow",
    prediction: str = "flow",
    weighting: str = "none",
    min_snr_gamma: float = 5.0,
) -> tuple[jax.Array, jax.Array]:
    """The randomness of one loss evaluation: times t [B] and noise eps of x0's shape.

    time_importance: draw t in proportion to density x loss weight (`weighted_times`; needs
    the loss's process, prediction and weighting) instead of from the density alone.
    """
    t_key, eps_key = jax.random.split(key)
    time_kw = dict(time_kind=time_kind, time_mean=time_mean, time_std=time_std,
                   time_shift=time_shift, time_uniform_mix=time_uniform_mix)
    if time_importance:
        sampler = weighted_times(process, prediction, weighting, min_snr_gamma, **time_kw)
        t = jnp.clip(sampler.sample(t_key, (x0.shape[0],)), TIME_EPS, 1.0 - TIME_EPS)  # [B]
    else:
        t = sample_time(t_key, (x0.shape[0],), time_kind, time_mean, time_std, time_shift,
                        time_uniform_mix)  # [B]
    eps = jax.random.normal(eps_key, x0.shape, x0.dtype)  # [B, ...]
    return t, eps


def diffusion_loss(
    model_fn: Callable[[jax.Array, jax.Array], jax.Array],
    x0: jax.Array,
    key: jax.Array | None,
    *,
    process: Process | str,
    prediction: str = "flow",
    time_kind: str = "logit_normal",
    time_mean: float = 0.0,
    time_std: float = 1.0,
    time_shift: float = 1.0,
    time_uniform_mix: float = 0.0,
    time_importance: bool = False,
    weighting: str = "none",
    min_snr_gamma: float = 5.0,
    mask: jax.Array | None = None,
    noise: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Denoising loss per example.

    model_fn(x_t [B, ...], t [B]) -> prediction of x0's shape. Conditions are the
    caller's business: close over them in model_fn.

    mask: optional, broadcastable to x0 (e.g. [B, T, 1, 1, 1] for per-frame), 1
    where the loss counts. Frames given as conditions are masked out so the
    model is not paid for copying them. Each example's error is averaged over
    its own counted entries (an example with none counted has loss 0).

    noise: (t [B], eps) drawn beforehand by ``draw_noise`` (then ``key`` is unused), so
    that a batch split into micro-batches sees the same randomness as the whole.

    time_importance: t is drawn in proportion to density x weight (``draw_noise``), so every
    example is weighted by the constant E[weight]: the same expected loss as drawing t from
    the density and weighting it by ``loss_weight``, without rare heavy examples.

    Returns (loss [B], aux) with aux = {'t' [B], 'mse' [B] (unweighted),
    'weight' [B]}; loss = weight * mse.
    """
    process = as_process(process)
    check_prediction(prediction)
    if noise is None:
        noise = draw_noise(key, x0, time_kind=time_kind, time_mean=time_mean, time_std=time_std,
                           time_shift=time_shift, time_uniform_mix=time_uniform_mix,
                           time_importance=time_importance, process=process,
                           prediction=prediction, weighting=weighting, min_snr_gamma=min_snr_gamma)
    t, eps = noise
    x_t = process.add_noise(x0, eps, t).astype(x0.dtype)
    out = model_fn(x_t, t)
    if out.shape != x0.shape:
        raise ValueError(f"model output shape {out.shape} != data shape {x0.shape}")

    # Accumulate in float32 whatever the activation dtype.
    tgt = target(process, prediction, x0.astype(jnp.float32), eps.astype(jnp.float32), t)
    err = jnp.square(out.astype(jnp.float32) - tgt)  # [B, ...]
    axes = tuple(range(1, x0.ndim))
    if mask is None:
        mse = jnp.mean(err, axis=axes)
    else:
        m = jnp.broadcast_to(jnp.asarray(mask, jnp.float32), x0.shape)
        mse = jnp.sum(err * m, axis=axes) / jnp.maximum(jnp.sum(m, axis=axes), 1.0)

    if time_importance:
        mean_weight = weighted_times(process, prediction, weighting, min_snr_gamma,
                                     time_kind=time_kind, time_mean=time_mean, time_std=time_std,
                                     time_shift=time_shift,
                                     time_uniform_mix=time_uniform_mix).mean_weight
        weight = jnp.full_like(t, mean_weight, jnp.float32)  # [B]
    else:
        weight = loss_weight(process, prediction, t, weighting, min_snr_gamma)  # [B]
    return weight * mse, {"t": t, "mse": mse, "weight": weight}
