"""One training step: a pure function ``(state, batch, key) -> (state, metrics)``.

Randomness: the step's key is ``fold_in(key, state.step)``, split into the
condition-dropout key, the diffusion (t, noise) key and the key that builds
conditions from the batch (e.g. which frames are given). Nothing is split per
device by hand: the same global computation runs on any mesh.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from vdm import conditioning
from vdm.diffusion import diffusion_loss, draw_noise, get_process
from vdm.train import accumulate
from vdm.train.numerics import keep_if_finite
from vdm.train.state import TrainState


def loss_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
    d = config.diffusion
    return dict(process=get_process(d.process), prediction=d.prediction, time_kind=d.time_sampling,
                time_mean=d.time_mean, time_std=d.time_std, time_shift=d.time_shift,
                time_uniform_mix=d.time_uniform_mix, time_importance=d.time_importance,
                weighting=d.weighting)


def make_loss_and_grads(graphdef, config: ml_collections.ConfigDict) -> Callable:
    """``(params, batch, step_key) -> (loss, grads)``: the mean diffusion loss over the global
    batch and its gradient, in ``config.train.grad_accum_steps`` micro-batches.

    The randomness (condition dropout, t, noise) is drawn for the whole batch first,
    so the number of micro-batches does not change what is computed.
    """
    names = conditioning.enabled(config.conditions)
    options = {n: config.conditions[n].to_dict() for n in names}
    rates = {n: float(config.conditions[n].dropout) for n in names}
    drop_all = float(config.conditions.drop_all)
    kwargs = loss_kwargs(config)
    accum_steps = int(config.train.grad_accum_steps)
    clean = conditioning.clean_groups(config.conditions, names)

    def loss_fn(params, micro):
        model = nnx.merge(graphdef, params)
        per_example, _ = diffusion_loss(lambda x, t: model(x, t, **micro["inputs"]), micro["video"],
                                        None, noise=micro["noise"], mask=micro.get("loss_mask"),
                                        **kwargs)
        return per_example.mean()

    def loss_and_grads(params, batch: Mapping[str, jax.Array], step_key: jax.Array):
        k_drop, k_loss, k_build = jax.random.split(step_key, 3)
        inputs = conditioning.training_inputs(batch, names, k_build, options)
        inputs, _ = conditioning.training_dropout(inputs, names, rates, drop_all, k_drop)
        noise = draw_noise(k_loss, batch["video"], **kwargs)
        whole = {"inputs": inputs, "video": batch["video"], "noise": noise}
        if clean:  # frames given clean are inputs, not predictions: the loss skips them
            whole["loss_mask"] = (1.0 - conditioning.given_frames(inputs, clean))[:, :, None, None, None]
        return accumulate.value_and_grad(loss_fn, params, whole, accum_steps)

    return loss_and_grads


def make_train_step(graphdef, tx: optax.GradientTransformation, config: ml_collections.ConfigDict,
                    schedule: Callable | None = None) -> Callable:
    ema_decay = float(config.train.ema_decay)
    loss_and_grads = make_loss_and_grads(graphdef, config)

    def train_step(state: TrainState, batch: Mapping[str, jax.Array], key: jax.Array):
        step_key = jax.random.fold_in(key, state.step)
        loss, grads = loss_and_grads(state.params, batch, step_key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # EMA with a warm-up so that short runs are not dominated by the initialisation.
        decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)
        grad_norm = optax.global_norm(grads)
        # A non-finite loss or gradient: keep the old state (only the step advances).
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        params, opt_state, ema = keep_if_finite(finite, (params, opt_state, ema),
                                                (state.params, state.opt_state, state.ema))
        metrics = {"loss": loss, "grad_norm": grad_norm, "param_norm": optax.global_norm(params),
                   "update_skipped": (~finite).astype(jnp.float32)}
        if schedule is not None:
            metrics["lr"] = schedule(state.step)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema=ema)
        return new_state, metrics

    return train_step
