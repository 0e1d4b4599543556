"""The condition registry: every condition is declared once, here.

A condition says which batch keys it reads, how it enters the model, its
training dropout and its guidance scale at sampling time. A config turns
conditions on by name; the trainer and the sampler only ever go through the
functions below, so adding a condition touches this file and a test.

Dropping a condition replaces its inputs with a declared "null" value of the
same shape (for text: the empty prompt), per example. Guidance then combines
the predictions with the conditions switched on one after another
(InstructPix2Pix-style nesting, generalised to N conditions).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vdm.diffusion import multi_guidance
from vdm.models.text import tokenize

Inputs = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    batch_keys: tuple[str, ...]  # what it reads from a batch (also the model's keyword args)
    enters: str  # how it enters the model, in words
    dropout: float  # default probability of dropping it alone in training
    guidance: float  # default guidance scale at sampling time
    null: Callable[[Inputs], Inputs]  # inputs -> the same inputs with this condition dropped


def _null_text(inputs: Inputs) -> Inputs:
    ids = inputs["text_ids"]
    null_ids, null_mask = tokenize("", ids.shape[-1])
    return {
        "text_ids": jnp.broadcast_to(jnp.asarray(null_ids, ids.dtype), ids.shape),
        "text_mask": jnp.broadcast_to(jnp.asarray(null_mask), inputs["text_mask"].shape),
    }


REGISTRY: dict[str, Condition] = {
    "text": Condition(
        name="text",
        batch_keys=("text_ids", "text_mask"),
        enters="text encoder tokens by cross-attention; their pooled vector by (per-frame) adaLN",
        dropout=0.1,
        guidance=4.0,
        null=_null_text,
    ),
}


def check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; registered: {sorted(REGISTRY)}")


def enabled(conditions_config: Mapping) -> list[str]:
    """Names of the conditions a config switches on, in registry order."""
    names = [n for n, c in conditions_config.items() if hasattr(c, "get") and c.get("enabled")]
    check_names(names)
    return [n for n in REGISTRY if n in names]


def select(batch: Mapping, names: Sequence[str]) -> Inputs:
    """The model's condition inputs for the enabled conditions."""
    out = {}
    for n in names:
        for k in REGISTRY[n].batch_keys:
            if k not in batch:
                raise KeyError(f"condition {n!r} needs batch key {k!r}; batch has {sorted(batch)}")
            out[k] = batch[k]
    return out


def drop(inputs: Inputs, names: Sequence[str], which: jax.Array | None = None) -> Inputs:
    """Replace the named conditions by their null inputs (where ``which`` [B] is True)."""
    out = dict(inputs)
    for n in names:
        cond = REGISTRY[n]
        part = {k: inputs[k] for k in cond.batch_keys}
        null = cond.null(part)
        for k in cond.batch_keys:
            if which is None:
                out[k] = null[k]
            else:
                w = which.reshape(which.shape + (1,) * (null[k].ndim - 1))
                out[k] = jnp.where(w, null[k], part[k])
    return out


def training_dropout(inputs: Inputs, names: Sequence[str], rates: Mapping[str, float],
                     drop_all: float, key: jax.Array) -> tuple[Inputs, dict[str, jax.Array]]:
    """Classifier-free-guidance dropout: each condition alone, plus all at once.

    Returns the inputs with dropped conditions nulled and the per-condition
    boolean [B] masks of what was dropped.
    """
    if not names:
        return inputs, {}
    batch = next(iter(inputs.values())).shape[0]
    k_all, *k_each = jax.random.split(key, len(names) + 1)
    all_dropped = jax.random.bernoulli(k_all, drop_all, (batch,))
    dropped = {}
    for n, k in zip(names, k_each):
        dropped[n] = all_dropped | jax.random.bernoulli(k, rates[n], (batch,))
        inputs = drop(inputs, [n], dropped[n])
    return inputs, dropped


def guided(apply_fn: Callable[..., jax.Array], inputs: Inputs, names: Sequence[str],
           scales: Mapping[str, float]) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """A denoiser ``(x_t, t) -> out`` that applies guidance for the named conditions.

    ``apply_fn(x_t, t, **inputs)`` is the model. Conditions are nested in
    ``names`` order: predictions with none, the first, the first two, ...
    switched on, combined by ``multi_guidance``. All variants go through the
    model as one batched call; with every scale at 1 it is a single plain call.
    """
    names = list(names)
    if all(float(scales[n]) == 1.0 for n in names):
        return lambda x, t: apply_fn(x, t, **inputs)
    variants = [drop(inputs, names[i:]) for i in range(len(names) + 1)]  # none, c1, c1+c2, ...
    stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs, 0), *variants)
    n_var = len(variants)
    scale_list = [float(scales[n]) for n in names]

    def fn(x, t):
        xs = jnp.concatenate([x] * n_var, 0)
        ts = jnp.concatenate([t] * n_var, 0)
        outs = jnp.split(apply_fn(xs, ts, **stacked), n_var, 0)
        return multi_guidance(outs, scale_list)

    return fn


def parse_guidance(text: str | float | None, names: Sequence[str],
                   defaults: Mapping[str, float]) -> dict[str, float]:
    """'4' (all conditions) or 'text=4,source=1.5' -> {name: scale}."""
    scales = {n: float(defaults[n]) for n in names}
    if text is None or text == "":
        return scales
    if isinstance(text, (int, float)) or "=" not in str(text):
        return {n: float(text) for n in names}
    for item in str(text).split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in names:
            raise ValueError(f"guidance for {name!r}, but the model's conditions are {list(names)}")
        scales[name] = float(value)
    return scales


def example_inputs(names: Sequence[str], batch: int, text_max_len: int) -> dict[str, np.ndarray]:
    """Zero-valued inputs of the right shapes, for building a model abstractly."""
    out = {}
    if "text" in names:
        out["text_ids"] = np.zeros((batch, text_max_len), np.int32)
        out["text_mask"] = np.ones((batch, text_max_len), bool)
    return out
