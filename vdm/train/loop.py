"""train(config, workdir): the whole run, top to bottom.

config -> mesh -> data -> state -> jitted step -> loop (logs, checkpoints,
sample grids) -> final checkpoint -> samples + grounded metrics.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from vdm import mfu, sharding
from vdm.config_upgrade import fill_added_fields
from vdm.data import moving_shapes, pipeline
from vdm.logging import MetricWriter, format_eta
from vdm.models.text import tokenize
from vdm.train import checkpoint, numerics, preemption
from vdm.train.state import TrainState, create_abstract_state, create_state, make_optimizer, video_shape
from vdm.train.step import make_train_step

RUN_FILES = ("checkpoints", "metrics.jsonl", "samples", "eval", "wandb", "config.json")


class WorkdirConflict(RuntimeError):
    """The workdir holds a run of another config."""


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    diffs = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "<missing>"), new.get(k, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            diffs.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return diffs


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict, *, resume: bool, overwrite: bool) -> None:
    """Same config: resume. Another config: refuse unless told to resume or overwrite."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    new = json.loads(config.to_json())
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        fill_added_fields(old, path, like=new)  # a run saved before a field existed is the same run
        diffs = config_diff(old, new)
        if diffs and overwrite:
            if jax.process_index() == 0:
                for name in RUN_FILES:
                    p = os.path.join(workdir, name)
                    if os.path.isdir(p):
                        shutil.rmtree(p)
                    elif os.path.exists(p):
                        os.remove(p)
        elif diffs and not resume:
            raise WorkdirConflict(
                f"{workdir} holds a run of another config ({len(diffs)} differences: "
                f"{'; '.join(diffs[:5])}{' ...' if len(diffs) > 5 else ''}). "
                f"Pass --resume to continue it with this config, or --overwrite to delete it.")
    if jax.process_index() == 0:
        with open(path + ".tmp", "w") as f:
            json.dump(new, f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)  # atomic: other processes read it whole or not at all


def check_config(config: ml_collections.ConfigDict, mesh) -> None:
    """Impossible values, named, before anything is compiled."""
    batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
    b = config.train.batch_size
    if b <= 0 or b % batch_shards:
        raise ValueError(f"train.batch_size={b} must be a positive multiple of data*fsdp="
                         f"{mesh.shape['data']}*{mesh.shape['fsdp']}={batch_shards}")
    k = config.train.grad_accum_steps
    if k <= 0 or b % k or (b // k) % batch_shards:
        raise ValueError(f"train.batch_size={b} in train.grad_accum_steps={k} micro-batches must give "
                         f"micro-batches of a multiple of data*fsdp={batch_shards}")
    if b % jax.process_count():
        raise ValueError(f"train.batch_size={b} is not divisible by the {jax.process_count()} processes")
    if config.train.num_steps < 0:
        raise ValueError(f"train.num_steps={config.train.num_steps} must be >= 0")
    if config.model.num_heads % mesh.shape["tensor"]:
        raise ValueError(f"model.num_heads={config.model.num_heads} is not divisible by "
                         f"mesh tensor={mesh.shape['tensor']}")
    pt = config.model.patch_size[0]
    frames = config.data.num_frames // pt
    if config.data.num_frames % pt or frames % mesh.shape["sequence"]:
        raise ValueError(f"data.num_frames={config.data.num_frames} / patch {pt} = {frames} latent frames, "
                         f"not divisible by mesh sequence={mesh.shape['sequence']}")


def make_train_iter(config: ml_collections.ConfigDict, split: str = "train"):
    moving_shapes.build(config.data.config, config.data.data_dir)
    source = pipeline.make_source(config.data.config, config.data.data_dir, split)
    per_process = config.train.batch_size // jax.process_count()
    dataset = pipeline.make_dataset(
        source, batch_size=per_process, num_frames=config.data.num_frames,
        frame_stride=config.data.frame_stride, seed=config.seed, shuffle=True,
        process_index=jax.process_index(), process_count=jax.process_count(),
        text_max_len=config.data.text_max_len, tokenize_fn=tokenize,
        text_key=config.data.text_key)
    return iter(dataset)


def device_batch(batch: dict, mesh) -> dict[str, jax.Array]:
    numeric = {k: v for k, v in batch.items() if np.asarray(v).dtype.kind in "biuf"}
    return pipeline.to_global(numeric, mesh)


def train(config: ml_collections.ConfigDict, workdir: str, *, resume: bool = False,
          overwrite: bool = False, devices=None, stop_after: int | None = None) -> dict[str, Any]:
    """Train (or resume) a run in ``workdir``; returns the final metrics.

    ``devices``: the devices of the mesh (default all). ``stop_after``: leave
    after this many steps of this invocation with a checkpoint written, as a
    preempted job would; the next call resumes.
    """
    mesh = sharding.make_mesh(dict(config.mesh), devices=devices)
    check_config(config, mesh)
    prepare_workdir(workdir, config, resume=resume, overwrite=overwrite)
    is_main = jax.process_index() == 0
    run_name = os.path.basename(os.path.normpath(workdir))
    writer = MetricWriter(workdir, config=config.to_dict(), wandb_cfg=config.wandb, is_main=is_main,
                          run_name=run_name)
    mngr = checkpoint.manager(workdir, keep=config.train.keep_checkpoints)
    try:
        with preemption.PreemptionWatch() as watch:
            return _train(config, workdir, mesh, writer, stop_after, mngr, watch)
    finally:
        checkpoint.close(mngr)  # every way out waits for pending saves
        writer.close()


def _train(config, workdir, mesh, writer: MetricWriter, stop_after: int | None, mngr,
           watch: preemption.PreemptionWatch) -> dict[str, Any]:
    t_start = time.time()
    data_iter = make_train_iter(config)
    t_data = time.time() - t_start
    tx, schedule = make_optimizer(config)
    with sharding.use_mesh(mesh):
        graphdef, state, shardings = create_state(config, mesh)
    latest = mngr.latest_step()
    if latest is not None:
        _, target = create_abstract_state(config, mesh)
        state = checkpoint.restore(mngr, latest, target, data_iter)
        print(f"resumed from step {latest} in {workdir}", flush=True)

    step_fn = make_train_step(graphdef, tx, config, schedule)
    rep = sharding.replicated(mesh)

    def jitted(state, batch, key):
        with sharding.use_mesh(mesh):
            return step_fn(state, batch, key)

    jit_step = jax.jit(jitted, in_shardings=(shardings, None, rep), out_shardings=(shardings, rep),
                       donate_argnums=(0,))
    key = jax.random.wrap_key_data(jax.device_get(state.rng))  # own buffer: the state is donated
    num_steps = config.train.num_steps
    evaluates = config.eval.num_samples > 0  # 0: train (and sample) only, no grounded evaluation
    step = int(state.step)
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    if writer.is_main:
        print(f"vdm: {n_params / 1e6:.2f}M parameters | mesh {dict(mesh.shape)} | "
              f"clip {video_shape(config)} | steps {step}->{num_steps} | data ready in {t_data:.1f}s",
              flush=True)
    meter = mfu.ThroughputMeter(config, mesh)
    pending: list[dict] = []
    guard = numerics.Guard(config.train.max_bad_steps)
    sampler_cache: dict = {}
    t_log, step_log, t_first = time.time(), step, None
    stop_at = num_steps if stop_after is None else min(num_steps, step + stop_after)
    while step < stop_at:
        batch = device_batch(next(data_iter), mesh)
        state, metrics = jit_step(state, batch, key)
        step += 1
        pending.append(metrics)
        guard.observe(step, metrics)
        preempted = watch.reached(step)  # asked at every step, on every process
        if t_first is None:
            jax.block_until_ready(metrics)
            t_first = time.time()
            writer.write(step, {"compile_s": t_first - t_log})
            t_log, step_log = t_first, step
        if step % config.train.log_every == 0 or step == stop_at or preempted:
            if pending:
                host = jax.device_get(pending)
                row = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
                row.update(guard.summary())
                now = time.time()
                rate = (step - step_log) / max(now - t_log, 1e-9) if step > step_log else 0.0
                row.update(steps_per_s=rate, examples_per_s=rate * config.train.batch_size)
                row.update(meter.metrics(rate))
                writer.write(step, row)
                print(f"step {step}/{num_steps} | loss {row['loss']:.4f} | grad {row['grad_norm']:.3f} | "
                      f"{rate:.2f} steps/s | mfu {row['mfu']:.1%} | eta {format_eta((num_steps - step) / max(rate, 1e-9))}",
                      flush=True)
                t_log, step_log, pending = now, step, []
        if step % config.train.ckpt_every == 0 and step < num_steps and not preempted:
            guard.before_save(state)
            checkpoint.save(mngr, step, state, data_iter, config)
        if preempted:
            print(f"preempted: saving step {step} and leaving", flush=True)
            break
        if config.train.sample_every and step % config.train.sample_every == 0 and step < num_steps:
            _periodic_samples(config, graphdef, state, mesh, workdir, step, writer, sampler_cache)
        if evaluates and config.eval.every and step % config.eval.every == 0 and step < num_steps:
            # The end-of-run evaluation, mid-run: same clips and seeds, logged as eval/*.
            writer.write(step, _final_eval(config, graphdef, state, mesh, workdir, step, writer, sampler_cache))
    guard.flush()
    if mngr.latest_step() != step:
        guard.before_save(state)
        checkpoint.save(mngr, step, state, data_iter, config, force=True)
    checkpoint.finish(mngr)  # a failed save is an error before the evaluation starts
    train_time = time.time() - t_start
    final = {"train_wall_s": train_time, "final_step": step}
    if step < num_steps:
        return final  # stopped early: no final evaluation
    if num_steps > 0 and evaluates:
        final.update(_final_eval(config, graphdef, state, mesh, workdir, step, writer, sampler_cache))
    writer.write(step, final)
    return final


def _generator(config, graphdef, state: TrainState, mesh, cache: dict):
    """One Generator per run, its weights swapped for the current EMA: the sampler
    compiles once per shape, not at every periodic sample."""
    from vdm.sampling import Generator

    if "gen" not in cache:
        cache["gen"] = Generator(config, graphdef, state.ema, mesh)
    cache["gen"].params = state.ema
    return cache["gen"]


def _periodic_samples(config, graphdef, state, mesh, workdir, step, writer, cache):
    from vdm.evaluation.runner import eval_prompts
    from vdm.video_io import write_samples

    gen = _generator(config, graphdef, state, mesh, cache)
    prompts, _ = eval_prompts(config, config.sample.num)
    videos = gen.generate(prompts, seed=config.seed)
    if writer.is_main:
        paths = write_samples(os.path.join(workdir, "samples", f"step_{step:07d}"), videos)
        for p in paths:
            writer.log_media(step, "samples/" + os.path.splitext(p)[1][1:], p)


def _final_eval(config, graphdef, state, mesh, workdir, step, writer, cache) -> dict[str, float]:
    from vdm.evaluation.runner import evaluate

    gen = _generator(config, graphdef, state, mesh, cache)
    t0 = time.time()
    metrics = evaluate(gen, config, os.path.join(workdir, "eval"), step=step, write=writer.is_main)
    metrics["eval_wall_s"] = time.time() - t0
    if writer.is_main:
        for ext in ("mp4", "gif", "png"):
            p = os.path.join(workdir, "eval", f"samples_step_{step:07d}.{ext}")
            if os.path.exists(p):
                writer.log_media(step, f"eval/{ext}", p)
    return {f"eval/{k}": v for k, v in metrics.items()}
