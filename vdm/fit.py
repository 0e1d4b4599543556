"""Will a config fit on a mesh? Per-device memory and FLOPs of one train step, without allocating.

The state and the batch are abstract (``jax.ShapeDtypeStruct`` with shardings);
the train step is lowered and compiled for the mesh exactly as training would
jit it, and the compiler's own memory and cost analyses are read back. On
forced host devices this answers for any mesh size before taking a cluster
(``tools/fit.py``); XLA's CPU and GPU/TPU compilers differ in fusion and
scheduling, so the activation figure is an estimate of the same program.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vdm import conditioning, sharding
from vdm.train.state import create_abstract_state, make_optimizer, video_shape
from vdm.train.step import make_train_step


def per_device_bytes(tree: Any) -> int:
    """Bytes one device holds of an abstract pytree (the largest shard of each leaf)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shard = leaf.sharding.shard_shape(leaf.shape)
        total += math.prod(shard) * np.dtype(leaf.dtype).itemsize
    return total


def abstract_batch(config: ml_collections.ConfigDict, mesh) -> dict[str, jax.ShapeDtypeStruct]:
    """The global batch the train step sees, as shapes with the batch sharding."""
    b = config.train.batch_size
    shapes = {"video": ((b,) + video_shape(config), jnp.float32)}
    if "text" in conditioning.enabled(config.conditions):
        length = config.data.text_max_len
        shapes.update(text_ids=((b, length), jnp.int32), text_mask=((b, length), jnp.bool_))
    return {k: jax.ShapeDtypeStruct(s, d, sharding=sharding.batch_sharding(mesh, len(s)))
            for k, (s, d) in shapes.items()}


def fit_report(config: ml_collections.ConfigDict, mesh) -> dict[str, float]:
    """Per-device bytes (parameters, optimizer state, EMA, batch, compiler temporaries) and
    FLOPs of one train step of ``config`` on ``mesh``; compiles, allocates nothing."""
    from vdm.train.loop import check_config

    check_config(config, mesh)
    tx, _ = make_optimizer(config)
    graphdef, state = create_abstract_state(config, mesh)
    shardings = jax.tree.map(lambda a: a.sharding, state)
    step_fn = make_train_step(graphdef, tx, config)
    rep = sharding.replicated(mesh)

    def step(state, batch, key):
        with sharding.use_mesh(mesh):
            return step_fn(state, batch, key)

    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=rep)
    batch = abstract_batch(config, mesh)
    compiled = jax.jit(step, in_shardings=(shardings, None, rep), out_shardings=(shardings, rep),
                       donate_argnums=(0,)).lower(state, batch, key).compile()
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {
        "devices": mesh.devices.size,
        "parameters": sum(x.size for x in jax.tree.leaves(state.params)),
        "params_bytes": per_device_bytes(state.params),
        "opt_state_bytes": per_device_bytes(state.opt_state),
        "ema_bytes": per_device_bytes(state.ema),
        "batch_bytes": per_device_bytes(batch),
        "temp_bytes": int(memory.temp_size_in_bytes),
        "flops_per_device": float(cost.get("flops", float("nan"))),
    }


def format_report(report: dict[str, float], mesh_shape: dict) -> str:
    def gib(b):
        unit = next((u for u in ("GiB", "MiB", "KiB") if b >= 2 ** {"GiB": 30, "MiB": 20, "KiB": 10}[u]), "B")
        scale = {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10, "B": 1}[unit]
        return f"{b / scale:9.2f} {unit}"

    state = report["params_bytes"] + report["opt_state_bytes"] + report["ema_bytes"]
    total = state + report["batch_bytes"] + report["temp_bytes"]
    flops = report["flops_per_device"]
    rows = [
        f"mesh {mesh_shape} ({report['devices']} devices), {report['parameters'] / 1e6:.1f}M parameters",
        "per device:",
        f"  parameters          {gib(report['params_bytes'])}",
        f"  optimizer state     {gib(report['opt_state_bytes'])}",
        f"  EMA                 {gib(report['ema_bytes'])}",
        f"  batch               {gib(report['batch_bytes'])}",
        f"  activations / temp  {gib(report['temp_bytes'])}   (compiler temporaries of one step)",
        f"  total               {gib(total)}",
        f"FLOPs per step: {flops:.3e} per device, {flops * report['devices']:.3e} in all",
    ]
    return "\n".join(rows)
