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

from vdm import frame_masks
from vdm.config_check import is_interval
from vdm.diffusion import guidance_weights
from vdm.models.text import tokenize

FULL_INTERVAL = (0.0, 1.0)  # guidance at every noise level

Inputs = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    batch_keys: tuple[str, ...]  # the model's keyword arguments for it
    enters: str  # how it enters the model, in words
    dropout: float  # default probability of dropping it alone in training
    guidance: float  # default guidance scale at sampling time
    null: Callable[[Inputs], Inputs]  # inputs -> the same inputs with this condition dropped
    # (batch, key, options) -> inputs: how training builds it from a data batch; options are
    # the condition's config entries (e.g. the frame-mask mix).
    build: Callable[[Mapping, jax.Array, Mapping], Inputs]
    channels: tuple[tuple[str, int], ...] = ()  # channel-concat groups: (batch key, channels)
    needs: tuple[str, ...] = ()  # data batch keys that `build` reads
    # A frame condition ((frames key, mask key) inputs): with the config's ``clean`` on, its
    # given frames also enter as clean frames of the clip (t = 0 there; see Denoiser).
    gives_frames: bool = False


def _null_text(inputs: Inputs) -> Inputs:
    ids = inputs["text_ids"]
    null_ids, null_mask = tokenize("", ids.shape[-1])
    return {
        "text_ids": jnp.broadcast_to(jnp.asarray(null_ids, ids.dtype), ids.shape),
        "text_mask": jnp.broadcast_to(jnp.asarray(null_mask), inputs["text_mask"].shape),
    }


def _null_zeros(inputs: Inputs) -> Inputs:
    """Visual conditions are absent as zeros: pixels 0 and a mask/presence flag of 0."""
    return {k: jnp.zeros_like(v) for k, v in inputs.items()}


def _build_text(batch: Mapping, key: jax.Array, options: Mapping) -> Inputs:
    del key, options
    return {"text_ids": batch["text_ids"], "text_mask": batch["text_mask"]}


def _frame_condition(name: str, mix_option: str, what: str) -> Condition:
    """A condition of given frames: the clip's own frames under a mask drawn from the config
    mix ``mix_option``, zeros elsewhere, plus the mask as a channel. Inputs ``name`` [B, T,
    H, W, C] and ``name_mask`` [B, T]."""
    mask_key = f"{name}_mask"

    def build(batch: Mapping, key: jax.Array, options: Mapping) -> Inputs:
        video = batch["video"]  # [B, T, H, W, C]
        mask = frame_masks.sample_masks(key, video.shape[0], video.shape[1], dict(options[mix_option]))
        return {name: video * mask[:, :, None, None, None], mask_key: mask}

    return Condition(
        name=name,
        batch_keys=(name, mask_key),
        enters=f"channel concat of the {what} frames (zeros elsewhere) plus a per-frame mask channel",
        dropout=0.1,
        guidance=1.0,
        null=_null_zeros,
        build=build,
        channels=((name, 3), (mask_key, 1)),
        needs=("video",),
        gives_frames=True,
    )


def _build_source(batch: Mapping, key: jax.Array, options: Mapping) -> Inputs:
    del key, options
    src = batch["source_video"]
    return {"source_video": src, "source_mask": jnp.ones((src.shape[0],), jnp.float32)}


# Registry order is the guidance nesting order: visual conditions first, text last, so
# that (as in InstructPix2Pix) the text scale measures what the prompt adds to a result
# that already follows the source/anchors.
REGISTRY: dict[str, Condition] = {
    "source_video": Condition(
        name="source_video",
        batch_keys=("source_video", "source_mask"),
        enters="channel concat of the whole source clip plus a presence channel",
        dropout=0.1,
        guidance=1.5,
        null=_null_zeros,
        build=_build_source,
        channels=(("source_video", 3), ("source_mask", 1)),
        needs=("source_video",),
    ),
    "image": _frame_condition("image", "anchors", "given"),
    "frames": _frame_condition("frames", "strategies", "known"),
    "text": Condition(
        name="text",
        batch_keys=("text_ids", "text_mask"),
        enters="text encoder tokens by cross-attention; their pooled vector by (per-frame) adaLN",
        dropout=0.1,
        guidance=4.0,
        null=_null_text,
        build=_build_text,
        needs=("text_ids", "text_mask"),
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
    """The model's condition inputs for the enabled conditions, read as they are."""
    out = {}
    for n in names:
        for k in REGISTRY[n].batch_keys:
            if k not in batch:
                raise KeyError(f"condition {n!r} needs batch key {k!r}; batch has {sorted(batch)}")
            out[k] = batch[k]
    return out


def training_inputs(batch: Mapping, names: Sequence[str], key: jax.Array,
                    options: Mapping[str, Mapping]) -> Inputs:
    """The model's condition inputs built from a data batch (e.g. frame masks drawn here)."""
    out = {}
    for n, k in zip(names, jax.random.split(key, max(len(names), 1))):
        cond = REGISTRY[n]
        missing = [b for b in cond.needs if b not in batch]
        if missing:
            raise KeyError(f"condition {n!r} needs data key(s) {missing}; the batch has {sorted(batch)} "
                           f"(is the dataset the right one for this condition?)")
        out.update(cond.build(batch, k, options.get(n, {})))
    return out


def clean_groups(conditions_config: Mapping, names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(frames key, mask key) of the named conditions whose config sets ``clean``: their
    given frames enter as clean frames of the clip at t = 0, and the loss skips them."""
    out = []
    for n in names:
        if not conditions_config[n].get("clean", False):
            continue
        if not REGISTRY[n].gives_frames:
            frame_conds = [k for k, c in REGISTRY.items() if c.gives_frames]
            raise ValueError(f"conditions.{n}.clean: {n!r} gives no frames of the clip; only "
                             f"{frame_conds} can enter as clean frames")
        out.append(REGISTRY[n].batch_keys)
    return tuple(out)


def given_frames(inputs: Inputs, groups: Sequence[tuple[str, str]]) -> jax.Array:
    """[B, T] float, 1 where any of the groups' masks gives the frame (after dropout)."""
    return jnp.max(jnp.stack([inputs[m] > 0 for _, m in groups]), axis=0).astype(jnp.float32)


def concat_layout(names: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """(input name, channels) of every channel-concat group of the named conditions, in order."""
    return tuple(group for n in names for group in REGISTRY[n].channels)


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
           scales: Mapping[str, float],
           interval: tuple[float, float] = FULL_INTERVAL) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """A denoiser ``(x_t, t) -> out`` that applies guidance for the named conditions.

    ``apply_fn(x_t, t, **inputs)`` is the model. Conditions are nested in
    ``names`` order: predictions with none, the first, the first two, ...
    switched on, combined by ``multi_guidance``. Variants whose weight in that
    combination is 0 are not computed (a scale of 1 merges a condition with the
    one before it); the rest go through the model as one batched call. With
    every scale at 1 it is a single plain call.

    ``interval = (lo, hi)``: guidance only where lo <= t <= hi (per example); elsewhere the
    output is the fully conditioned prediction (Kynkaanniemi et al. 2024, "Applying guidance
    in a limited interval"). Near t = 0 guidance pushes edges past what the conditional
    model draws; (0, 1) guides at every t.
    """
    names = list(names)
    lo, hi = check_interval(interval)
    weights = guidance_weights([float(scales[n]) for n in names])
    plain = [0.0] * len(names) + [1.0]  # outside the interval: only the fully conditioned output
    everywhere = lo <= 0.0 and hi >= 1.0
    keep = [i for i, w in enumerate(weights) if w != 0.0 or (not everywhere and plain[i] != 0.0)]
    variants = [(weights[i], plain[i], drop(inputs, names[i:])) for i in keep]
    if len(variants) == 1 and variants[0][0] == 1.0 and (everywhere or variants[0][1] == 1.0):
        only = variants[0][2]
        return lambda x, t: apply_fn(x, t, **only)
    stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs, 0), *[v for _, _, v in variants])
    n_var = len(variants)

    def fn(x, t):
        xs = jnp.concatenate([x] * n_var, 0)
        ts = jnp.concatenate([t] * n_var, 0)
        outs = jnp.split(apply_fn(xs, ts, **stacked), n_var, 0)
        if everywhere:
            return sum(w * o for (w, _, _), o in zip(variants, outs))
        inside = ((t >= lo) & (t <= hi)).reshape((-1,) + (1,) * (x.ndim - 1))  # [B, 1, ...]
        return sum(jnp.where(inside, w, p) * o for (w, p, _), o in zip(variants, outs))

    return fn


def check_interval(interval: Sequence[float]) -> tuple[float, float]:
    """(lo, hi) as floats, or a ValueError naming the problem."""
    if not is_interval(interval):
        raise ValueError(f"a guidance interval is two noise levels (lo, hi) with 0 <= lo < hi <= 1, "
                         f"got {interval!r}")
    lo, hi = interval
    return float(lo), float(hi)


ALIASES = {"source": "source_video"}  # short names accepted on command lines


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
        name = ALIASES.get(name.strip(), name.strip())
        if name not in names:
            raise ValueError(f"guidance for {name!r}, but the model's conditions are {list(names)}")
        scales[name] = float(value)
    return scales


def example_inputs(names: Sequence[str], batch: int, text_max_len: int,
                   video_shape: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
    """Zero-valued inputs of the right shapes, for building a model abstractly.
    video_shape: the clip's (T, H, W, C)."""
    T, H, W, C = video_shape
    out = {}
    for n in names:
        if n == "text":
            out["text_ids"] = np.zeros((batch, text_max_len), np.int32)
            out["text_mask"] = np.ones((batch, text_max_len), bool)
        elif n == "source_video":
            out["source_video"] = np.zeros((batch, T, H, W, C), np.float32)
            out["source_mask"] = np.zeros((batch,), np.float32)
        else:  # a frame condition: frames + per-frame mask
            video_key, mask_key = REGISTRY[n].batch_keys
            out[video_key] = np.zeros((batch, T, H, W, C), np.float32)
            out[mask_key] = np.zeros((batch, T), np.float32)
    return out
