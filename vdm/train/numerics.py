"""Non-finite losses and gradients: skip the update on device, stop the run after too many.

On device (inside the jitted step) ``keep_if_finite`` returns the old parameters,
optimizer state and EMA when the loss or the gradient norm is not finite. Both
are global values of the one jitted program over the global batch, so every
process takes the same decision. (optax.apply_if_finite is not used: it applies
the update after its error budget is spent, making the parameters non-finite.)

On the host, ``Guard`` reads each step's metrics one step late (so that the
device is never waited for), counts skipped steps, stops the run once
``max_bad_steps`` consecutive steps were skipped, and tracks a running mean of
the loss to log spikes (the loss over its running mean).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Mapping

import jax
import jax.numpy as jnp


class NonFiniteTraining(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


def keep_if_finite(ok: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``ok`` (a scalar bool) else ``old``, leaf by leaf."""
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def non_finite_leaves(tree: Any) -> list[str]:
    """Names of the floating-point leaves of ``tree`` holding a NaN or an infinity."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    floats = [(path, x) for path, x in flat if jnp.issubdtype(x.dtype, jnp.floating)]
    finite = jax.jit(lambda xs: [jnp.isfinite(x).all() for x in xs])([x for _, x in floats])
    return [jax.tree_util.keystr(path) for (path, _), ok in zip(floats, jax.device_get(finite)) if not ok]


class Guard:
    def __init__(self, max_bad_steps: int, spike_decay: float = 0.99):
        if max_bad_steps < 1:
            raise ValueError(f"train.max_bad_steps={max_bad_steps} must be >= 1")
        self.max_bad_steps = max_bad_steps
        self.spike_decay = spike_decay
        self._queue: deque[tuple[int, Mapping[str, jax.Array]]] = deque()
        self.skipped_total = 0
        self.streak = 0
        self._streak_start = 0
        self._loss_mean: float | None = None
        self._spike_max = 0.0

    def observe(self, step: int, metrics: Mapping[str, jax.Array]) -> None:
        """Queue this step's metrics; check the ones already computed (all but the newest)."""
        self._queue.append((step, metrics))
        self._drain(keep=1)

    def flush(self) -> None:
        """Check every queued step (before a save, and at the end)."""
        self._drain(keep=0)

    def _drain(self, keep: int) -> None:
        while len(self._queue) > keep:
            step, metrics = self._queue.popleft()
            skipped, loss = jax.device_get((metrics["update_skipped"], metrics["loss"]))
            self._check(step, bool(skipped), float(loss))

    def _check(self, step: int, skipped: bool, loss: float) -> None:
        if skipped:
            self.skipped_total += 1
            if self.streak == 0:
                self._streak_start = step
            self.streak += 1
            if self.streak >= self.max_bad_steps:
                raise NonFiniteTraining(
                    f"steps {self._streak_start}-{step}: {self.streak} consecutive steps with a non-finite "
                    f"loss or gradient (train.max_bad_steps={self.max_bad_steps}); their updates were "
                    f"skipped and the run stops here, its last checkpoint holds finite values")
            return
        self.streak = 0
        if self._loss_mean is None:
            self._loss_mean = loss
        self._spike_max = max(self._spike_max, loss / max(self._loss_mean, 1e-12))
        self._loss_mean = self.spike_decay * self._loss_mean + (1 - self.spike_decay) * loss

    def summary(self) -> dict[str, float]:
        """For the metrics row: skipped updates so far, and the largest loss / running mean
        since the last summary (1.0 = no spike)."""
        out = {"skipped_updates": float(self.skipped_total), "loss_spike": self._spike_max or 1.0}
        self._spike_max = 0.0
        return out

    def before_save(self, state: Any) -> None:
        """Never write a checkpoint holding a NaN or an infinity."""
        self.flush()
        bad = non_finite_leaves(state)
        if bad:
            raise NonFiniteTraining(f"refusing to save a state with non-finite values in {len(bad)} arrays: "
                                    + ", ".join(bad[:5]))
