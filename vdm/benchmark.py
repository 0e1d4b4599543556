"""Measure a config: parameters, compile time, train step time, sampling speed, memory.

Times are medians over repeated runs after warm-up (the machines are shared
and noisy). Inputs are synthetic batches of the config's shapes, so the
numbers measure the model and step, not the data pipeline.
"""
from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from vdm import sharding
from vdm.models.text import tokenize
from vdm.train.state import create_state, make_optimizer, video_shape
from vdm.train.step import make_train_step


def synthetic_batch(config: ml_collections.ConfigDict, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t, h, w, c = video_shape(config)
    out = {"video": rng.uniform(-1, 1, (batch, t, h, w, c)).astype(np.float32)}
    ids, mask = tokenize(["a red circle moves left"] * batch, config.data.text_max_len)
    out.update(text_ids=np.asarray(ids, np.int32), text_mask=np.asarray(mask, bool))
    return out


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def peak_memory_bytes() -> dict[str, int]:
    out = {"host_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
    return out


def benchmark(config: ml_collections.ConfigDict, *, steps: int = 10, warmup: int = 2,
              sample_repeats: int = 3, sample_num: int | None = None, sample_steps: int | None = None
              ) -> dict[str, Any]:
    mesh = sharding.make_mesh(dict(config.mesh))
    tx, _ = make_optimizer(config)
    with sharding.use_mesh(mesh):
        graphdef, state, shardings = create_state(config, mesh)
    n_params = int(sum(x.size for x in jax.tree.leaves(state.params)))
    step_fn = make_train_step(graphdef, tx, config)

    def run(state, batch, key):
        with sharding.use_mesh(mesh):
            return step_fn(state, batch, key)

    rep = sharding.replicated(mesh)
    jit_step = jax.jit(run, in_shardings=(shardings, None, rep), out_shardings=(shardings, rep),
                       donate_argnums=(0,))
    b = config.train.batch_size
    batch = {k: jax.device_put(v, sharding.batch_sharding(mesh, v.ndim))
             for k, v in synthetic_batch(config, b).items()}
    key = jax.random.key(0)

    t0 = time.perf_counter()
    compiled = jit_step.lower(state, batch, key).compile()
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        state, m = compiled(state, batch, key)
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, m = compiled(state, batch, key)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)

    from vdm.sampling import Generator

    gen = Generator(config, graphdef, state.ema, mesh)
    num = sample_num or config.sample.num
    prompts = ["a red circle moves left"] * num if "text" in gen.names else None
    n_steps = sample_steps or config.sample.steps
    t0 = time.perf_counter()
    gen.generate(prompts, num=num, steps=n_steps)
    sample_first_s = time.perf_counter() - t0
    sample_s, _ = _median_time(lambda: gen.generate(prompts, num=num, steps=n_steps), sample_repeats)
    return {
        "params": n_params,
        "batch_size": b,
        "clip": list(video_shape(config)),
        "layout": config.model.layout,
        "mesh": dict(mesh.shape),
        "compile_s": round(compile_s, 3),
        "train_step_s": round(step_s, 5),
        "train_step_s_all": [round(t, 5) for t in times],
        "train_examples_per_s": round(b / step_s, 2),
        "sample_num": num,
        "sample_steps": n_steps,
        "sample_compile_and_run_s": round(sample_first_s, 3),
        "sample_s": round(sample_s, 4),
        "samples_per_s": round(num / sample_s, 3),
        **peak_memory_bytes(),
    }
