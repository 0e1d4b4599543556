"""Generate clips from a trained model: text-to-video, image-to-video, prediction /
interpolation from given frames, editing (a source-conditioned model, or SDEdit).

``Generator.from_workdir(workdir)`` loads the latest checkpoint (EMA weights by
default) with the config it was trained with. ``generate`` runs the whole
sampler as one jitted program (a ``lax.scan`` over steps, guidance batched
into one model call per step) and returns uint8 clips.
"""
from __future__ import annotations

import sys
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from vdm import conditioning, frame_masks, sharding
from vdm.conditioning import REGISTRY
from vdm.diffusion import get_process, sample as run_sampler
from vdm.models.text import tokenize
from vdm.train import checkpoint
from vdm.train.state import video_shape
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
        graphdef, state, step = checkpoint.read_state(workdir, step, config, mesh)
        gen = cls(config, graphdef, state.ema if use_ema else state.params, mesh)
        gen.step = step
        return gen

    # --- inputs ---------------------------------------------------------------------

    def _clips(self, x, what: str, num: int, frames: int | None = None) -> np.ndarray:
        """uint8 or [-1, 1] float clips [N or 1, t, H, W, 3] -> float32 [num, t, H, W, 3] in [-1, 1]."""
        x = np.asarray(x)
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 127.5 - 1.0
        x = x.astype(np.float32)
        T, H, W, C = self.video_shape
        if x.ndim != 5 or x.shape[2:] != (H, W, C):
            raise ValueError(f"{what} must be clips [N, frames, {H}, {W}, {C}] at the model's "
                             f"resolution, got shape {x.shape}")
        if frames is not None and x.shape[1] != frames:
            raise ValueError(f"{what} has {x.shape[1]} frames; the model needs {frames}")
        if x.shape[0] == 1:
            x = np.repeat(x, num, axis=0)
        if x.shape[0] != num:
            raise ValueError(f"{what} has {x.shape[0]} clips for {num} samples")
        return x

    def _require(self, name: str, what: str) -> None:
        if name not in self.names:
            raise ValueError(f"{what} was given, but this model was trained without the {name!r} "
                             f"condition (its conditions: {self.names or 'none'})")

    def inputs_for(self, prompts: Sequence[str] | None, num: int, *, image=None, image_at=(0,),
                   frames=None, frames_at=None, source=None) -> tuple[dict[str, np.ndarray], list[str]]:
        """The model's condition inputs and the names of the conditions actually given.

        Conditions the model has but the call does not give enter as their null value
        (dropped), as in training; only given conditions are guided.
        image   [N or 1, k, H, W, 3] (or [N, H, W, 3]: one frame), placed at frames ``image_at``
        frames  [N or 1, k, H, W, 3] known frames placed at ``frames_at`` (default 0..k-1)
        source  [N or 1, T, H, W, 3] the clip to edit
        """
        if prompts is not None and "text" not in self.names:
            raise ValueError(f"a prompt was given, but this model was trained without a text "
                             f"condition (its conditions: {self.names or 'none'})")
        T, H, W, C = self.video_shape
        out, given = {}, []
        if "text" in self.names:
            texts = list(prompts or [""])
            if len(texts) == 1:
                texts = texts * num
            if len(texts) != num:
                raise ValueError(f"{len(texts)} prompts for {num} samples")
            ids, mask = tokenize(texts, self.config.data.text_max_len)
            out.update(text_ids=np.asarray(ids, np.int32), text_mask=np.asarray(mask, bool))
            if prompts is not None:
                given.append("text")
        for name, clip, at in (("image", image, image_at), ("frames", frames, frames_at)):
            if name not in self.names and clip is None:
                continue
            video_key, mask_key = conditioning.REGISTRY[name].batch_keys
            known = np.zeros((num, T, H, W, C), np.float32)
            mask = np.zeros((num, T), np.float32)
            if clip is not None:
                self._require(name, f"{'an image' if name == 'image' else 'known frames'}")
                clip = np.asarray(clip)
                if name == "image" and clip.ndim == 4:
                    clip = clip[:, None]
                clip = self._clips(clip, name, num)
                at = list(range(clip.shape[1])) if at is None else list(at)
                if len(at) != clip.shape[1]:
                    raise ValueError(f"{clip.shape[1]} {name} frames for positions {at}")
                m = frame_masks.mask_from_indices(at, T)
                if m.sum() >= T:
                    raise ValueError(f"{name}: all {T} frames given, nothing to generate")
                idx = np.flatnonzero(m)
                order = [a + T if a < 0 else a for a in at]
                known[:, order] = clip
                mask[:, idx] = 1.0
                given.append(name)
            out[video_key], out[mask_key] = known, mask
        if "source_video" in self.names:
            src = np.zeros((num, T, H, W, C), np.float32)
            present = np.zeros((num,), np.float32)
            if source is not None:
                src = self._clips(source, "source", num, frames=T)
                present[:] = 1.0
                given.append("source_video")
            out.update(source_video=src, source_mask=present)
        return out, [n for n in self.names if n in given]

    # --- the compiled sampler -------------------------------------------------------

    def _fn(self, num: int, steps: int, sampler: str, guided: tuple, scales: tuple, interval: tuple,
            shift: float, eta: float, strength: float, progress: bool):
        key = (num, steps, sampler, guided, scales, interval, shift, eta, strength, progress)
        if key in self._compiled:
            return self._compiled[key]
        d = self.config.diffusion
        process = get_process(d.process)
        graphdef = self.graphdef
        scale_map = dict(zip(guided, scales))
        bar = _Progress(steps, progress)

        def fn(params, inputs, clamp, init, rng):
            model = nnx.merge(graphdef, params)

            def apply(x, t, **kw):
                if progress:
                    jax.debug.callback(bar, t[0])
                return model(x, t, **kw)

            k_noise, k_sampler = jax.random.split(rng)
            # Drawn whole and then split over the batch axes: the same key gives the same
            # noise on any mesh (partitionable threefry draws each device's part locally).
            noise = jax.random.normal(k_noise, (num,) + self.video_shape, jnp.float32)
            model_fn = conditioning.guided(apply, inputs, guided, scale_map, interval)
            with sharding.use_mesh(self.mesh):
                noise = sharding.constrain(noise, ("act_batch",) + (None,) * len(self.video_shape))
                return run_sampler(model_fn, noise, process=process, prediction=d.prediction,
                                   sampler=sampler, num_steps=steps, shift=shift, eta=eta, key=k_sampler,
                                   clamp=clamp, init=init, strength=strength)

        compiled = jax.jit(fn)
        self._compiled[key] = (compiled, bar)
        return compiled, bar

    def generate(self, prompts: Sequence[str] | None = None, *, num: int | None = None, seed: int = 0,
                 image=None, image_at: Sequence[int] = (0,), frames=None,
                 frames_at: Sequence[int] | None = None, source=None, strength: float = 1.0,
                 clamp: bool = True, steps: int | None = None, sampler: str | None = None,
                 guidance: float | str | Mapping | None = None,
                 guidance_interval: Sequence[float] | None = None, shift: float | None = None,
                 eta: float | None = None, progress: bool = False) -> np.ndarray:
        """Clips as uint8 [N, T, H, W, 3]. The same seed gives the same clips.

        text-to-video: prompts. image-to-video: + image (frame 0 unless image_at).
        prediction / interpolation: frames (+ frames_at). editing: source (a model trained
        with the source_video condition) and/or strength < 1 (SDEdit: start from the source
        noised to t = strength; works with any checkpoint). clamp: the given frames are
        reproduced exactly (replacement at every step); otherwise they only condition,
        except for a condition trained ``clean``, whose frames are the sample's frames there.
        guidance_interval: (lo, hi), guide only at noise levels lo <= t <= hi (default: the
        config's ``sample.guidance_interval``).
        """
        s = self.config.sample
        num = num or (len(prompts) if prompts else s.num)
        strength = float(strength)
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        if strength < 1.0 and source is None:
            raise ValueError("strength < 1 (SDEdit) needs a source clip to start from")
        if source is not None and "source_video" not in self.names and strength == 1.0:
            self._require("source_video", "a source clip (without --strength)")
        sdedit_only = source is not None and "source_video" not in self.names
        inputs, given = self.inputs_for(prompts, num, image=image, image_at=image_at, frames=frames,
                                        frames_at=frames_at, source=None if sdedit_only else source)
        init = self._clips(source, "source", num, frames=self.video_shape[0]) if strength < 1.0 else None
        known = None
        # Frames given clean (the condition's `clean`) are the sample's frames there, clamp or not.
        clean = [n for n in given if self.config.conditions[n].get("clean", False)]
        held = [n for n in ("image", "frames") if n in given and (clamp or n in clean)]
        if held:
            masks = [inputs[REGISTRY[n].batch_keys[1]] for n in held]
            mask = np.maximum.reduce(masks)  # [N, T]
            video = sum(inputs[REGISTRY[n].batch_keys[0]] for n in held)
            if len(masks) > 1:  # both give a frame: they must agree; keep one copy
                video = np.where((masks[0] * masks[1])[..., None, None, None] > 0,
                                 inputs[REGISTRY["image"].batch_keys[0]], video)
            known = (video, mask[:, :, None, None, None])
        if isinstance(guidance, Mapping):
            scales = {n: float(guidance.get(n, self.config.conditions[n].guidance)) for n in self.names}
        else:
            defaults = {n: self.config.conditions[n].guidance for n in self.names}
            scales = conditioning.parse_guidance(guidance, self.names, defaults)
        interval = conditioning.check_interval(s.guidance_interval if guidance_interval is None
                                               else guidance_interval)
        fn, bar = self._fn(num, int(steps or s.steps), sampler or s.sampler, tuple(given),
                           tuple(scales[n] for n in given), interval, float(s.shift if shift is None else shift),
                           float(s.eta if eta is None else eta), strength, progress)
        bar.done = 0
        out = fn(self.params, inputs, known, init, jax.random.key(seed))
        return to_uint8(np.asarray(jax.device_get(out)))
