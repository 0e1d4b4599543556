"""Measure a config: compile time, step time, memory and MFU of train / forward / sample.

Times are medians over repeated runs after warm-up (the machines are shared
and noisy). Inputs are synthetic batches of the config's shapes, so the
numbers measure the model and step, not the data pipeline. FLOPs are the
analytic matmul counts of ``vdm.flops``; MFU divides them by the peak of
``vdm.mfu`` (config, datasheet, or a measured CPU matmul).

Memory: ``compiled_*`` come from XLA's memory analysis of the compiled
program (arguments + outputs + temporaries - donated aliases: the program's
peak footprint); ``host_peak_rss_bytes`` is the process's high-water mark so
far (it only grows, so in a comparison it covers everything run before).
"""
from __future__ import annotations

import resource
import statistics
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from vdm import conditioning, flops, mfu, sharding
from vdm.diffusion import get_process, sampling_times, to_x0_eps
from vdm.models.text import tokenize
from vdm.dot_floor import dot_floor as dot_floor_of
from vdm.op_profile import profile_ops
from vdm.timing import timed
from vdm.train.state import create_state, make_optimizer, video_shape
from vdm.train.step import make_train_step

MODES = ("train", "forward", "sample")


def synthetic_batch(config: ml_collections.ConfigDict, batch: int, seed: int = 0,
                    frames: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t, h, w, c = video_shape(config)
    out = {"video": rng.uniform(-1, 1, (batch, frames or t, h, w, c)).astype(np.float32)}
    ids, mask = tokenize(["a red circle moves left"] * batch, config.data.text_max_len)
    out.update(text_ids=np.asarray(ids, np.int32), text_mask=np.asarray(mask, bool))
    return out


def _compile(jitted, *args) -> tuple[Any, float]:
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def compiled_memory(compiled) -> dict[str, int]:
    m = compiled.memory_analysis()
    if m is None:
        return {}
    peak = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return {"compiled_temp_bytes": int(m.temp_size_in_bytes), "compiled_peak_bytes": int(peak)}


def compiled_memory_prefixed(compiled, prefix: str) -> dict[str, int]:
    return {f"{prefix}_{k}": v for k, v in compiled_memory(compiled).items()}


def host_memory() -> dict[str, int]:
    out = {"host_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
    return out


def _rates(times: list[float], flop: float, peak: float, prefix: str) -> dict[str, Any]:
    median = statistics.median(times)
    return {f"{prefix}_s": round(median, 5), f"{prefix}_s_all": [round(t, 5) for t in times],
            f"{prefix}_flops": flop, f"{prefix}_flops_per_s": flop / median,
            f"{prefix}_mfu": flop / median / peak}


def benchmark(config: ml_collections.ConfigDict, *, modes: Sequence[str] = MODES, steps: int = 10,
              warmup: int = 2, sample_repeats: int = 3, sample_num: int | None = None,
              sample_steps: int | None = None, frames: int | None = None,
              python_loop: bool = False, profile: bool = False, dot_floor: bool = False) -> dict[str, Any]:
    """One JSON-able dict of measurements; ``frames`` overrides the clip length (the
    model runs any length its patch divides); ``python_loop`` also times the same
    Euler sampling driven step by step from Python, one jitted model step per call;
    ``profile`` adds where the train step's time goes (``vdm.op_profile``) and the MFU
    it would reach if only its matmuls took time; ``dot_floor`` times each of the train
    step's dots alone (``vdm.dot_floor``) and the MFU the step would reach if it took no
    more than that."""
    bad = set(modes) - set(MODES)
    if bad:
        raise ValueError(f"unknown benchmark modes {sorted(bad)}; valid: {MODES}")
    mesh = sharding.make_mesh(dict(config.mesh))
    tx, _ = make_optimizer(config)
    with sharding.use_mesh(mesh):
        graphdef, state, shardings = create_state(config, mesh)
    model = nnx.merge(graphdef, state.params)  # for its dimensions (flops), not run
    clip = (frames or video_shape(config)[0],) + video_shape(config)[1:3]
    text_len = mfu.text_len(config)
    b = config.train.batch_size
    peak, peak_source = mfu.mesh_peak_flops(config, mesh)
    out: dict[str, Any] = {
        "params": int(sum(x.size for x in jax.tree.leaves(state.params))),
        "batch_size": b, "clip": list(clip) + [video_shape(config)[3]],
        "layout": config.model.layout, "depth": config.model.depth, "dtype": config.model.dtype,
        "scan_layers": config.model.scan_layers, "remat": config.model.remat,
        "mesh": dict(mesh.shape), "tokens_per_clip": flops.tokens_per_clip(model.dit, clip),
        "peak_flops_per_s": peak, "peak_source": peak_source,
    }
    batch = {k: jax.device_put(v, sharding.batch_sharding(mesh, v.ndim))
             for k, v in synthetic_batch(config, b, frames=frames).items()}
    rep = sharding.replicated(mesh)

    if "forward" in modes:
        names = conditioning.enabled(config.conditions)

        def forward(params, batch):
            with sharding.use_mesh(mesh):
                m = nnx.merge(graphdef, params)
                return m(batch["video"], jnp.full((b,), 0.5), **conditioning.select(batch, names))

        compiled, compile_s = _compile(jax.jit(forward), state.params, batch)
        out.update(forward_compile_s=round(compile_s, 3), **compiled_memory_prefixed(compiled, "forward"))
        if steps:
            times = timed(lambda: compiled(state.params, batch), steps, warmup)
            out.update(_rates(times, flops.forward_flops(model, b, clip, text_len), peak, "forward"))

    if "train" in modes:
        step_fn = make_train_step(graphdef, tx, config)

        def run(state, batch, key):
            with sharding.use_mesh(mesh):
                return step_fn(state, batch, key)

        jit_step = jax.jit(run, in_shardings=(shardings, None, rep), out_shardings=(shardings, rep),
                           donate_argnums=(0,))
        key = jax.random.key(0)
        compiled, compile_s = _compile(jit_step, state, batch, key)
        holder = [state]

        def one():
            holder[0], m = compiled(holder[0], batch, key)
            return m

        step_flops = flops.train_step_flops(model, b, clip, text_len)
        out.update(compile_s=round(compile_s, 3), **compiled_memory(compiled), train_step_flops=step_flops)
        if steps:  # steps=0: compile time, memory and FLOPs only
            times = timed(one, steps, warmup)
            state = holder[0]
            out.update(**_rates(times, step_flops, peak, "train_step"),
                       tokens_per_s=round(b * out["tokens_per_clip"] / statistics.median(times), 1),
                       train_examples_per_s=round(b / statistics.median(times), 3))
            if profile:
                ops = profile_ops(lambda: jax.block_until_ready(one()), compiled.as_text(), runs=3)
                out.update(train_op_profile=ops, train_matmul_only_mfu_bound=round(
                    out["train_step_mfu"] / max(ops["matmul_share"], 1e-9), 4))
        if dot_floor:
            floor = dot_floor_of(jit_step, holder[0], batch, key)
            # Accelerators split the global program's dots over the mesh (the peak is the
            # sum of theirs); host CPU devices share one machine and its one measured peak.
            split = 1 if mesh.devices.flat[0].platform == "cpu" else mesh.devices.size
            bound = lambda s: round(step_flops / (s / split) / peak, 4)
            out.update(train_dot_floor=floor, train_dot_floor_mfu_bound=bound(floor["dot_floor_s"]),
                       train_dot_floor_best_order_mfu_bound=bound(floor["dot_floor_best_order_s"]))

    if "sample" in modes:
        out.update(_sample(config, graphdef, state.params, mesh, model, clip, text_len, peak,
                           sample_num, sample_steps, sample_repeats, python_loop))
    out.update(host_memory())
    return out


def _sample(config, graphdef, params, mesh, model, clip, text_len, peak, sample_num, sample_steps,
            repeats, python_loop) -> dict[str, Any]:
    from vdm.sampling import Generator

    gen = Generator(config, graphdef, params, mesh)
    num = sample_num or config.sample.num
    prompts = ["a red circle moves left"] * num if "text" in gen.names else None
    n_steps = sample_steps or config.sample.steps
    sampler = config.sample.sampler
    guided = any(float(config.conditions[n].guidance) != 1.0 for n in gen.names)
    variants = len(gen.names) + 1 if guided else 1
    t0 = time.perf_counter()
    scanned = gen.generate(prompts, num=num, steps=n_steps)
    first_s = time.perf_counter() - t0
    times = timed(lambda: gen.generate(prompts, num=num, steps=n_steps), repeats, warmup=0)
    run_flops = num * flops.sample_flops_per_clip(model, clip, sampler=sampler, steps=n_steps,
                                                  guidance_variants=variants, text_len=text_len)
    out = {"sample_num": num, "sample_steps": n_steps, "sampler": sampler, "guidance_variants": variants,
           "sample_compile_and_run_s": round(first_s, 3),
           **_rates(times, run_flops, peak, "sample"),
           "sample_s_per_clip": round(statistics.median(times) / num, 4)}
    if python_loop:
        if sampler != "euler":
            raise ValueError(f"the Python-loop comparison implements euler, not {sampler!r}")
        loop_s, loop_out = _python_loop_euler(gen, prompts, num, n_steps, repeats)
        out.update(python_loop_s=round(loop_s, 4), python_loop_over_scan=round(loop_s / statistics.median(times), 3),
                   python_loop_max_abs_diff=int(np.abs(loop_out.astype(int) - scanned.astype(int)).max()))
    return out


def _python_loop_euler(gen, prompts, num: int, steps: int, repeats: int) -> tuple[float, np.ndarray]:
    """The same Euler sampling, seed and guidance as ``gen.generate``, but the step loop in
    Python: one jitted call (guided model + update) per step. Returns (median s, uint8 clips)."""
    from vdm.video_io import to_uint8

    config, d = gen.config, gen.config.diffusion
    process = get_process(d.process)
    inputs, given = gen.inputs_for(prompts, num)
    defaults = {n: config.conditions[n].guidance for n in given}
    scales = conditioning.parse_guidance(None, given, defaults)

    @jax.jit
    def step(params, x, t, t_next):
        model = nnx.merge(gen.graphdef, params)
        model_fn = conditioning.guided(lambda x, t, **kw: model(x, t, **kw), inputs, given, scales)
        with sharding.use_mesh(gen.mesh):
            t_batch = jnp.full((x.shape[0],), t, jnp.float32)
            x0, eps = to_x0_eps(process, d.prediction, model_fn(x, t_batch).astype(jnp.float32), x, t_batch)
            return x + (t_next - t) * (process.d_alpha(t) * x0 + process.d_sigma(t) * eps)

    times = np.asarray(sampling_times(steps, float(config.sample.shift)))

    def run():
        k_noise, _ = jax.random.split(jax.random.key(0))
        x = jax.random.normal(k_noise, (num,) + gen.video_shape, jnp.float32)
        for t, t_next in zip(times[:-1], times[1:]):
            x = step(gen.params, x, t, t_next)
        return x

    out = run()  # compiles the step
    loop_times = timed(run, repeats, warmup=0)
    return statistics.median(loop_times), to_uint8(np.asarray(jax.device_get(out)))


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Side by side: both results and b / a for every shared number."""
    ratios = {k: round(b[k] / a[k], 4) for k in a
              if k in b and isinstance(a[k], (int, float)) and not isinstance(a[k], bool)
              and isinstance(b[k], (int, float)) and a[k]}
    return {"a": a, "b": b, "b_over_a": ratios}
