"""Generate clips from a trained model: text-to-video (more modes build on this).

``Generator.from_workdir(workdir)`` loads the latest checkpoint (EMA weights by
default) with the config it was trained with. ``generate`` runs the whole
sampler as one jitted program (a ``lax.scan`` over steps, guidance batched
into one model call per step) and returns uint8 clips.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from vdm import conditioning, sharding
from vdm.diffusion import get_process, sample as run_sampler
from vdm.models.text import tokenize
from vdm.train import checkpoint
from vdm.train.state import create_abstract_state, video_shape
from vdm.video_io import to_uint8


class _Progress:
    """A text progress bar fed from inside the compiled sampler (jax.debug.callback)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done = total, enabled, 0

    def __call__(self, *_):
        if not self.enabled:
            return
        self.done += 1
        width = 30
        filled = int(width * self.done / self.total)
        sys.stderr.write(f"\rsampling [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class Generator:
    def __init__(self, config: ml_collections.ConfigDict, graphdef, params, mesh=None):
        self.config = config
        self.graphdef = graphdef
        self.params = params
        self.mesh = mesh or sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
        self.names = conditioning.enabled(config.conditions)
        self.video_shape = video_shape(config)
        self._compiled = {}

    @classmethod
    def from_workdir(cls, workdir: str, *, step: int | None = None, use_ema: bool = True,
                     mesh=None) -> "Generator":
        config = checkpoint.restore_config(workdir)
        mesh = mesh or sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
        mngr = checkpoint.manager(workdir, keep=config.train.keep_checkpoints, async_save=False)
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{workdir}: no checkpoint found in {os.path.join(workdir, 'checkpoints')}")
        if step not in mngr.all_steps():
            raise FileNotFoundError(f"{workdir}: no checkpoint at step {step}; have {sorted(mngr.all_steps())}")
        graphdef, target = create_abstract_state(config, mesh)
        state = checkpoint.restore(mngr, step, target)
        mngr.close()
        gen = cls(config, graphdef, state.ema if use_ema else state.params, mesh)
        gen.step = step
        return gen

    # --- inputs ---------------------------------------------------------------------

    def inputs_for(self, prompts: Sequence[str] | None, num: int) -> dict[str, np.ndarray]:
        if prompts is not None and "text" not in self.names:
            raise ValueError(f"a prompt was given, but this model was trained without a text "
                             f"condition (its conditions: {self.names or 'none'})")
        out = {}
        if "text" in self.names:
            prompts = list(prompts or [""])
            if len(prompts) == 1:
                prompts = prompts * num
            if len(prompts) != num:
                raise ValueError(f"{len(prompts)} prompts for {num} samples")
            ids, mask = tokenize(prompts, self.config.data.text_max_len)
            out.update(text_ids=np.asarray(ids, np.int32), text_mask=np.asarray(mask, bool))
        return out

    # --- the compiled sampler -------------------------------------------------------

    def _fn(self, num: int, steps: int, sampler: str, scales: tuple, shift: float, eta: float,
            progress: bool):
        key = (num, steps, sampler, scales, shift, eta, progress)
        if key in self._compiled:
            return self._compiled[key]
        d = self.config.diffusion
        process = get_process(d.process)
        graphdef, names = self.graphdef, self.names
        scale_map = dict(zip(names, scales))
        bar = _Progress(steps, progress)

        def fn(params, inputs, rng):
            model = nnx.merge(graphdef, params)

            def apply(x, t, **kw):
                if progress:
                    jax.debug.callback(bar, t[0])
                return model(x, t, **kw)

            k_noise, k_sampler = jax.random.split(rng)
            # Drawn whole and then split over the batch axes: the same key gives the same
            # noise on any mesh (partitionable threefry draws each device's part locally).
            noise = jax.random.normal(k_noise, (num,) + self.video_shape, jnp.float32)
            model_fn = conditioning.guided(apply, inputs, names, scale_map)
            with sharding.use_mesh(self.mesh):
                noise = sharding.constrain(noise, ("act_batch",) + (None,) * len(self.video_shape))
                return run_sampler(model_fn, noise, process=process, prediction=d.prediction,
                                   sampler=sampler, num_steps=steps, shift=shift, eta=eta, key=k_sampler)

        compiled = jax.jit(fn)
        self._compiled[key] = (compiled, bar)
        return compiled, bar

    def generate(self, prompts: Sequence[str] | None = None, *, num: int | None = None, seed: int = 0,
                 steps: int | None = None, sampler: str | None = None,
                 guidance: float | str | Mapping | None = None, shift: float | None = None,
                 eta: float | None = None, progress: bool = False) -> np.ndarray:
        """Clips as uint8 [N, T, H, W, 3]. The same seed gives the same clips."""
        s = self.config.sample
        num = num or (len(prompts) if prompts else s.num)
        inputs = self.inputs_for(prompts, num)
        if isinstance(guidance, Mapping):
            scales = {n: float(guidance.get(n, self.config.conditions[n].guidance)) for n in self.names}
        else:
            defaults = {n: self.config.conditions[n].guidance for n in self.names}
            scales = conditioning.parse_guidance(guidance, self.names, defaults)
        fn, bar = self._fn(num, int(steps or s.steps), sampler or s.sampler,
                           tuple(scales[n] for n in self.names), float(s.shift if shift is None else shift),
                           float(s.eta if eta is None else eta), progress)
        bar.done = 0
        out = fn(self.params, inputs, jax.random.key(seed))
        return to_uint8(np.asarray(jax.device_get(out)))
