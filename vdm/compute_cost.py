"""What a config costs: FLOPs from XLA's cost analysis of the compiled programs, memory from
XLA's memory analysis, and measured wall time (medians; the machines are shared).

- Sampling: ``model_call_flops`` is one guided denoiser evaluation for ONE clip (the model
  forward, times the guidance variants that are batched with it, e.g. 2 with text guidance
  != 1); ``flops_per_clip`` = that x model evaluations per sampler step (2 for Heun) x steps.
  ``sample_s_per_clip`` is a measured full sampling run divided by the clips in it.
- Training: ``train_step_flops`` (forward + backward + optimizer, global batch),
  ``train_step_s`` (median) and ``train_peak_bytes``: arguments + outputs + XLA temporaries of
  the compiled step, i.e. the memory the step needs on its devices (host RSS would also count
  the runtime).

Inputs are synthetic arrays of the config's shapes: numbers measure the model, not the data.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from vdm import conditioning, sharding
from vdm.benchmark import synthetic_batch
from vdm.timing import timed
from vdm.train.state import create_state, make_optimizer, video_shape
from vdm.train.step import make_train_step

MODEL_EVALS_PER_STEP = {"euler": 1, "ddim": 1, "ddpm": 1, "heun": 2}
SHORT = {"source_video": "src", "image": "img", "frames": "frm"}  # `setup` labels; * = guided


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0]
    return float(cost.get("flops", float("nan")))


def _given(gen, num: int) -> dict:
    """Every condition of the model given (random content of the right shape)."""
    rng = np.random.default_rng(0)
    T, H, W, C = gen.video_shape
    kw = {}
    if "image" in gen.names:
        kw["image"] = rng.integers(0, 256, (num, 1, H, W, C), dtype=np.uint8)
    if "frames" in gen.names:
        kw["frames"] = rng.integers(0, 256, (num, max(T // 2, 1), H, W, C), dtype=np.uint8)
    if "source_video" in gen.names:
        kw["source"] = rng.integers(0, 256, (num, T, H, W, C), dtype=np.uint8)
    prompts = ["a red circle moves left"] * num if "text" in gen.names else None
    return dict(prompts=prompts, **kw)


def sampling_cost(config: ml_collections.ConfigDict, *, num: int = 4, repeats: int = 3,
                  steps: int | None = None) -> dict[str, Any]:
    from vdm.sampling import Generator

    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    with sharding.use_mesh(mesh):
        graphdef, state, _ = create_state(config, mesh)
    gen = Generator(config, graphdef, state.ema, mesh)
    steps = int(steps or config.sample.steps)
    given = _given(gen, num)

    # One guided model evaluation for one clip, compiled on its own for its cost.
    inputs, names = gen.inputs_for(given["prompts"][:1] if given["prompts"] else None, 1,
                                   **{k: v[:1] for k, v in given.items() if k != "prompts"})
    scales = {n: float(config.conditions[n].guidance) for n in names}

    def one_eval(params, x, t):
        model = nnx.merge(graphdef, params)
        with sharding.use_mesh(mesh):
            return conditioning.guided(model, inputs, names, scales)(x, t)

    x = jnp.zeros((1,) + gen.video_shape, jnp.float32)
    call_flops = _flops(jax.jit(one_eval).lower(gen.params, x, jnp.full((1,), 0.5)).compile())
    evals = MODEL_EVALS_PER_STEP.get(config.sample.sampler, 1)

    def run():
        return gen.generate(given["prompts"], num=num, steps=steps,
                            **{k: v for k, v in given.items() if k != "prompts"})

    t0 = time.perf_counter()
    run()  # compiles
    first = time.perf_counter() - t0
    sample_s = statistics.median(timed(run, repeats, warmup=0))
    guided = ",".join(n for n in names if scales[n] != 1.0)
    return {
        "conditions": ",".join(gen.names),
        "guided": guided,
        "setup": "+".join(SHORT.get(n, n) + ("*" if scales.get(n, 1.0) != 1.0 else "") for n in gen.names),
        "clip": "x".join(str(d) for d in gen.video_shape),
        "sample_steps": steps,
        "model_call_flops": call_flops,
        "flops_per_clip": call_flops * evals * steps,
        "sample_compile_s": round(first - sample_s, 3),
        "sample_s_per_clip": sample_s / num,
        "sample_num": num,
    }


def train_cost(config: ml_collections.ConfigDict, *, steps: int = 3, warmup: int = 1) -> dict[str, Any]:
    mesh = sharding.make_mesh(dict(config.mesh))
    tx, schedule = make_optimizer(config)
    with sharding.use_mesh(mesh):
        graphdef, state, shardings = create_state(config, mesh)
    step_fn = make_train_step(graphdef, tx, config, schedule)

    def run(state, batch, key):
        with sharding.use_mesh(mesh):
            return step_fn(state, batch, key)

    rep = sharding.replicated(mesh)
    jit_step = jax.jit(run, in_shardings=(shardings, None, rep), out_shardings=(shardings, rep),
                       donate_argnums=(0,))
    b = config.train.batch_size
    batch = synthetic_batch(config, b)
    if "source_video" in conditioning.enabled(config.conditions):
        batch["source_video"] = batch["video"][::-1].copy()
    batch = {k: jax.device_put(v, sharding.batch_sharding(mesh, v.ndim)) for k, v in batch.items()}
    key = jax.random.key(0)
    compiled = jit_step.lower(state, batch, key).compile()
    mem = compiled.memory_analysis()
    for _ in range(warmup):
        state, m = compiled(state, batch, key)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, m = compiled(state, batch, key)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    out = {
        "params": int(sum(x.size for x in jax.tree.leaves(state.params))),
        "batch_size": b,
        "clip": "x".join(str(d) for d in video_shape(config)),
        "train_step_flops": _flops(compiled),
        "train_step_s": statistics.median(times),
    }
    if mem is not None:
        out["train_temp_bytes"] = int(mem.temp_size_in_bytes)
        out["train_peak_bytes"] = int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                                      + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
    return out
