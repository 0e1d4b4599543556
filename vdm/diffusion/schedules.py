"""Noise processes, time shifts and the sampling of diffusion time.

Convention used throughout `vdm.diffusion`: time t lies in [0, 1], t = 0 is clean
data, t = 1 is noise, and

    x_t = alpha(t) * x0 + sigma(t) * eps,    eps ~ N(0, I).

A process is a small frozen dataclass (hashable, so it can be a static argument
of `jax.jit`) that gives alpha, sigma and their time derivatives. Everything
here is pure jnp on arrays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

# Training times are kept this far from 0 and 1: at the exact ends one of
# alpha, sigma is zero and some prediction conversions divide by it.
TIME_EPS = 1e-5


def broadcast_like(c: jax.Array, x: jax.Array) -> jax.Array:
    """Right-pad a per-example coefficient c [B] (or scalar) with 1-dims to x's rank."""
    c = jnp.asarray(c)
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))


def _time(t) -> jax.Array:
    # Time is always float32, whatever the data dtype: bf16 has too few bits
    # near t = 1 for the sampler grid.
    return jnp.asarray(t, jnp.float32)


class Process:
    """Shared behaviour of the noise processes; subclasses define the coefficients."""

    name: ClassVar[str]

    def alpha(self, t) -> jax.Array:
        raise NotImplementedError

    def sigma(self, t) -> jax.Array:
        raise NotImplementedError

    def d_alpha(self, t) -> jax.Array:
        """d alpha / dt."""
        raise NotImplementedError

    def d_sigma(self, t) -> jax.Array:
        """d sigma / dt."""
        raise NotImplementedError

    def add_noise(self, x0: jax.Array, eps: jax.Array, t) -> jax.Array:
        """x_t for x0, eps [B, ...] and t [B] (or a scalar)."""
        a = broadcast_like(self.alpha(t), x0)
        s = broadcast_like(self.sigma(t), x0)
        return a * x0 + s * eps

    def snr(self, t) -> jax.Array:
        """Signal-to-noise ratio alpha^2 / sigma^2 (inf at t = 0)."""
        return jnp.square(self.alpha(t)) / jnp.square(self.sigma(t))


@dataclasses.dataclass(frozen=True)
class RectifiedFlow(Process):
    """Straight line between data and noise: alpha = 1 - t, sigma = t.

    The default process of the codebase. Its velocity d x_t / dt = eps - x0 is
    what 'flow' prediction regresses.
    """

    name: ClassVar[str] = "flow"

    def alpha(self, t) -> jax.Array:
        return 1.0 - _time(t)

    def sigma(self, t) -> jax.Array:
        return _time(t)

    def d_alpha(self, t) -> jax.Array:
        return -jnp.ones_like(_time(t))

    def d_sigma(self, t) -> jax.Array:
        return jnp.ones_like(_time(t))


@dataclasses.dataclass(frozen=True)
class VPCosine(Process):
    """Variance preserving cosine process: alpha = cos(pi/2 t), sigma = sin(pi/2 t).

    alpha^2 + sigma^2 = 1 for all t. Time is clipped to [0, t_max] inside every
    coefficient: at t = 1 alpha would be exactly 0 and the eps -> x0 conversion
    (x0 = (x_t - sigma eps) / alpha) would divide by zero. With t_max = 1 - 1e-4,
    alpha(1) ~ 1.6e-4 (log-SNR ~ -17.5), which is noise for any practical purpose.
    """

    name: ClassVar[str] = "vp_cosine"
    t_max: float = 1.0 - 1e-4

    def _t(self, t) -> jax.Array:
        return jnp.clip(_time(t), 0.0, self.t_max)

    def alpha(self, t) -> jax.Array:
        return jnp.cos(0.5 * jnp.pi * self._t(t))

    def sigma(self, t) -> jax.Array:
        return jnp.sin(0.5 * jnp.pi * self._t(t))

    def d_alpha(self, t) -> jax.Array:
        return -0.5 * jnp.pi * jnp.sin(0.5 * jnp.pi * self._t(t))

    def d_sigma(self, t) -> jax.Array:
        return 0.5 * jnp.pi * jnp.cos(0.5 * jnp.pi * self._t(t))


PROCESSES: dict[str, type[Process]] = {
    RectifiedFlow.name: RectifiedFlow,
    VPCosine.name: VPCosine,
}


def get_process(name: str) -> Process:
    """The process registered under `name` ('flow', 'vp_cosine')."""
    if name not in PROCESSES:
        raise ValueError(
            f"unknown noise process {name!r}; valid choices: {sorted(PROCESSES)}"
        )
    return PROCESSES[name]()


def as_process(process: Process | str) -> Process:
    """Accept either a process object or its registered name."""
    return get_process(process) if isinstance(process, str) else process


def shift_time(t, shift):
    """SD3 resolution/length shift: t' = shift t / (1 + (shift - 1) t).

    Keeps 0 and 1 fixed and is monotone; shift > 1 moves mass toward noise, which
    larger clips need because more tokens average away more of the noise.
    shift = 1 is the identity.
    """
    return shift * t / (1.0 + (shift - 1.0) * t)


def shift_for_tokens(num_tokens, base_tokens, base_shift: float = 1.0):
    """Shift for a clip of `num_tokens`, given `base_shift` was right for `base_tokens`.

    shift = base_shift * sqrt(num_tokens / base_tokens). `shift_time` multiplies
    the flow's noise-to-signal ratio t / (1 - t) by `shift`. A clip with n times
    more tokens holds ~n redundant looks at the same content; averaging them
    divides the noise std by sqrt(n), so keeping the same uncertainty about the
    content needs sigma / alpha larger by sqrt(n).
    """
    if isinstance(num_tokens, (int, float)) and isinstance(base_tokens, (int, float)):
        if num_tokens <= 0 or base_tokens <= 0:
            raise ValueError(
                f"token counts must be positive, got {num_tokens=} {base_tokens=}"
            )
        return base_shift * math.sqrt(num_tokens / base_tokens)
    return base_shift * jnp.sqrt(num_tokens / base_tokens)


TIME_KINDS = ("uniform", "logit_normal")


def sample_time(
    key: jax.Array,
    shape: tuple[int, ...],
    kind: str = "uniform",
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    uniform_mix: float = 0.0,
) -> jax.Array:
    """Training times of `shape` in [TIME_EPS, 1 - TIME_EPS].

    'uniform': t ~ U(0, 1). 'logit_normal' (SD3): t = sigmoid(n), n ~ N(mean, std),
    which spends more of training at mid noise levels. The shift is applied after
    drawing, so the shifted logit-normal has median shift_time(sigmoid(mean)).
    uniform_mix: the fraction of times drawn U(0, 1) instead (unshifted): a shift toward
    high noise leaves the low-noise end almost untrained (shift 3: 2.6% of draws below
    t = 0.3), where edges are made.
    """
    if not 0.0 <= uniform_mix <= 1.0:
        raise ValueError(f"uniform_mix must be in [0, 1], got {uniform_mix}")
    k_draw, k_mix, k_uniform = jax.random.split(key, 3) if uniform_mix > 0 else (key, None, None)
    if kind == "uniform":
        t = jax.random.uniform(k_draw, shape, jnp.float32)
    elif kind == "logit_normal":
        t = jax.nn.sigmoid(mean + std * jax.random.normal(k_draw, shape, jnp.float32))
    else:
        raise ValueError(f"unknown time sampling {kind!r}; valid choices: {list(TIME_KINDS)}")
    t = shift_time(t, shift)
    if uniform_mix > 0:
        use_uniform = jax.random.uniform(k_mix, shape) < uniform_mix
        t = jnp.where(use_uniform, jax.random.uniform(k_uniform, shape, jnp.float32), t)
    return jnp.clip(t, TIME_EPS, 1.0 - TIME_EPS)


def time_density(t, kind: str = "uniform", mean: float = 0.0, std: float = 1.0, shift: float = 1.0,
                 uniform_mix: float = 0.0) -> np.ndarray:
    """The density of `sample_time`'s draws at t in (0, 1), in float64 numpy (the clip to
    [TIME_EPS, 1 - TIME_EPS] moves a negligible mass and is left out).

    A draw u (uniform, or logit-normal: density phi((logit u - mean) / std) / (std u (1 - u)))
    is shifted to t = shift_time(u); the density of t is p_u(u(t)) du/dt with
    u(t) = unshift_time(t) and du/dt = shift / (shift - (shift - 1) t)^2.
    """
    if not 0.0 <= uniform_mix <= 1.0:
        raise ValueError(f"uniform_mix must be in [0, 1], got {uniform_mix}")
    t = np.asarray(t, np.float64)
    u = unshift_time(t, shift)
    du_dt = shift / np.square(shift - (shift - 1.0) * t)
    if kind == "uniform":
        p_u = np.ones_like(u)
    elif kind == "logit_normal":
        z = (np.log(u) - np.log1p(-u) - mean) / std
        p_u = np.exp(-0.5 * z * z) / (np.sqrt(2.0 * np.pi) * std * u * (1.0 - u))
    else:
        raise ValueError(f"unknown time sampling {kind!r}; valid choices: {list(TIME_KINDS)}")
    return (1.0 - uniform_mix) * p_u * du_dt + uniform_mix


def unshift_time(t, shift):
    """The inverse of `shift_time`: u with shift_time(u, shift) = t."""
    return t / (shift - (shift - 1.0) * t)


def sampling_times(num_steps: int, shift: float = 1.0, t_start: float = 1.0) -> jax.Array:
    """Decreasing grid t_start = t_0 > t_1 > ... > t_N = 0, shifted; shape [num_steps + 1].

    With t_start < 1 (SDEdit) the grid is the shifted schedule's own warp of
    [0, t_start]: the same spacing the full schedule has below t_start, in
    num_steps steps.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start must be in (0, 1], got {t_start}")
    u_start = unshift_time(t_start, shift)
    t = shift_time(jnp.linspace(u_start, 0.0, num_steps + 1, dtype=jnp.float32), shift)
    # The shift maps u_start back to t_start only up to rounding.
    return t.at[0].set(t_start).at[-1].set(0.0)
