"""Two cheap probes of whether a model knows the *sign* of motion.

Left vs right is the same clip played backwards, so a model can learn the
axis of motion and stay blind to its direction. These probes tell which case
a checkpoint is in, without sampling:

- direction-swap loss: the diffusion loss of test clips with their true
  captions against the same clips with every direction word replaced by its
  opposite, at fixed noise levels. Equal losses mean the model ignores the
  direction words.
- frame reversal: the relative change of the model output when the input
  frames are reversed (compared in the original frame order). A model that
  is symmetric in time changes little.
"""
from __future__ import annotations

import re
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vdm import conditioning
from vdm.data import pipeline
from vdm.data.shapes_render import DIRECTION_NAMES, DIRECTIONS
from vdm.diffusion import get_process, target
from vdm.models.text import tokenize
from vdm.train.state import video_shape

_OPPOSITE = {}
for _name, (_dy, _dx) in DIRECTIONS.items():
    for _other, (_oy, _ox) in DIRECTIONS.items():
        if abs(_oy + _dy) < 1e-6 and abs(_ox + _dx) < 1e-6:
            _OPPOSITE[_name] = _other
# Longest names first so "up-left" is not read as "up".
_DIRECTION_RE = re.compile(r"\b(" + "|".join(sorted(DIRECTION_NAMES, key=len, reverse=True)) + r")\b")


def opposite_caption(caption: str) -> str:
    """'a red circle moves up-left' -> 'a red circle moves down-right'."""
    return _DIRECTION_RE.sub(lambda m: _OPPOSITE[m.group(1)], caption)


def _test_batch(config, num: int):
    source = pipeline.make_source(config.data.config, config.data.data_dir, "test")
    examples = [source[i] for i in range(min(num, len(source)))]
    t = config.data.num_frames
    video = np.stack([np.asarray(e["video"][:t], np.float32) / 127.5 - 1.0 for e in examples])
    captions = [e["caption"].decode() if isinstance(e["caption"], bytes) else str(e["caption"])
                for e in examples]
    return video, captions


def direction_swap_loss(graphdef, params, config, *, num: int = 64,
                        times: Sequence[float] = (0.3, 0.6, 0.8, 0.95), seed: int = 0,
                        given_first_frame: bool = False) -> dict[str, float]:
    """Loss with true vs opposite-direction captions at each t (same noise for both).

    given_first_frame: the image condition holds each clip's true first frame, as in the i2v
    task, and the loss is over the other frames. Where the object starts often tells which
    way it can go, so this asks whether the words still matter once the start is known.
    """
    d = config.diffusion
    process = get_process(d.process)
    video, captions = _test_batch(config, num)
    x0 = jnp.asarray(video)
    eps = jax.random.normal(jax.random.key(seed), x0.shape)
    L = config.data.text_max_len
    true_ids, true_mask = tokenize(captions, L)
    swap_ids, swap_mask = tokenize([opposite_caption(c) for c in captions], L)

    others = _dropped_others(config, x0.shape[0])
    weight = jnp.ones(x0.shape[:2])  # [B, T]: the frames the loss is over
    if given_first_frame:
        first = _first_frame_given(config, x0)
        others.update(first)
        weight = 1.0 - first[conditioning.REGISTRY["image"].batch_keys[1]]

    @jax.jit
    def loss(params, x0, eps, ids, mask, t):
        model = nnx.merge(graphdef, params)
        tt = jnp.full((x0.shape[0],), t)
        tb = tt.reshape(-1, 1, 1, 1, 1)
        x_t = process.alpha(tb) * x0 + process.sigma(tb) * eps
        out = model(x_t, tt, text_ids=ids, text_mask=mask, **others)
        err = jnp.mean((out - target(process, d.prediction, x0, eps, tt)) ** 2, axis=(2, 3, 4))  # [B, T]
        return jnp.sum(err * weight) / jnp.sum(weight)

    out = {}
    for t in times:
        lt = float(loss(params, x0, eps, true_ids, true_mask, t))
        ls = float(loss(params, x0, eps, swap_ids, swap_mask, t))
        out[f"loss_true@{t}"] = lt
        out[f"loss_swapped@{t}"] = ls
        out[f"swap_gap@{t}"] = (ls - lt) / lt
    return out


def frame_reversal_change(graphdef, params, config, *, num: int = 64, t: float = 0.8,
                          seed: int = 0) -> float:
    """||rev(f(rev(x_t))) - f(x_t)|| / ||f(x_t)|| on noised test clips."""
    process = get_process(config.diffusion.process)
    video, captions = _test_batch(config, num)
    x0 = jnp.asarray(video)
    eps = jax.random.normal(jax.random.key(seed), x0.shape)
    ids, mask = tokenize(captions, config.data.text_max_len)
    kw = {"text_ids": ids, "text_mask": mask} if "text_ids" in _inputs(config) else {}
    kw.update(_dropped_others(config, x0.shape[0]))
    tt = jnp.full((x0.shape[0],), t)
    x_t = process.alpha(t) * x0 + process.sigma(t) * eps
    f = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x, tt, **kw))
    a = f(params, x_t)
    b = jnp.flip(f(params, jnp.flip(x_t, 1)), 1)  # frames are axis 1 of [B, T, H, W, C]
    return float(jnp.linalg.norm(b - a) / jnp.linalg.norm(a))


def _dropped_others(config, batch: int) -> dict:
    """Every condition but text as its null (dropped) input, as the sampler gives a condition
    it is not given: the probes ask about the text and the frames alone."""
    others = [n for n in conditioning.enabled(config.conditions) if n != "text"]
    if not others:
        return {}
    zeros = conditioning.example_inputs(others, batch, config.data.text_max_len, video_shape(config))
    return conditioning.drop({k: jnp.asarray(v) for k, v in zeros.items()}, others)


def _first_frame_given(config, x0: jax.Array) -> dict:
    """The image condition's inputs holding each clip's first frame (x0 [B, T, H, W, C])."""
    names = conditioning.enabled(config.conditions)
    if "image" not in names:
        raise ValueError(f"given_first_frame needs a model with the 'image' condition; this one "
                         f"has {names or 'none'}")
    video_key, mask_key = conditioning.REGISTRY["image"].batch_keys
    mask = jnp.zeros(x0.shape[:2]).at[:, 0].set(1.0)  # [B, T]
    return {video_key: x0 * mask[:, :, None, None, None], mask_key: mask}


def _inputs(config) -> set[str]:
    names = conditioning.enabled(config.conditions)
    return {k for n in names for k in conditioning.REGISTRY[n].batch_keys}
