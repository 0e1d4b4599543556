"""Checkpoints: orbax CheckpointManager over (train state, data iterator, config).

Restores always go through an abstract target built from the config and the
current mesh, so a run can move to another device count. Before restoring, the
stored shapes and dtypes are compared with the target (orbax casts dtypes
silently) and the files are checked against the checksum manifest written when
the save committed (orbax restores flipped bytes silently).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import grain
from absl import logging
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from vdm.config_upgrade import fill_added_fields
from vdm.train import manifest

# Replica-parallel saving slices each replicated array per replica, one small compiled
# program per shape: a cost that only pays off for large arrays. (The override is
# intended; orbax warns about any override.)
_verbosity = logging.get_verbosity()
logging.set_verbosity(logging.ERROR)
ocp.type_handlers.register_type_handler(
    jax.Array, ocp.type_handlers.ArrayHandler(min_slice_bytes_for_replica_parallel=1 << 20),
    override=True)
logging.set_verbosity(_verbosity)


class CheckpointError(RuntimeError):
    """A checkpoint could not be written."""


class CheckpointMismatch(ValueError):
    """A checkpoint's arrays differ in name, shape or dtype from the config restoring it (bad input)."""


def manager(workdir: str, *, keep: int, async_save: bool = True) -> ocp.CheckpointManager:
    """The training run's own manager: the one writer of a workdir."""
    # cleanup_tmp_directories: a save killed half-way leaves N.orbax-checkpoint-tmp*; remove it.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                           enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def reader(workdir: str) -> ocp.CheckpointManager:
    """A read-only manager, for sampling, evaluating or probing a run, also while it trains.
    It never removes the temporary folders of saves in flight: a writer's manager would,
    and the running save then fails on its deleted files."""
    path = os.path.join(os.path.abspath(workdir), "checkpoints")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{workdir}: no checkpoints folder; is this a vdm workdir?")
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, cleanup_tmp_directories=False,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(path, options=options)


def step_dir(mngr: ocp.CheckpointManager, step: int) -> str:
    return os.path.join(str(mngr.directory), str(step))


def finish(mngr: ocp.CheckpointManager) -> None:
    """Wait for pending async saves, then write the checksum manifest of every committed
    step that has none. A failed save raises CheckpointError naming the directory."""
    try:
        mngr.wait_until_finished()
    except Exception as e:  # orbax surfaces write errors (disk full, ...) only here
        raise CheckpointError(f"saving a checkpoint under {mngr.directory} failed: "
                              f"{type(e).__name__}: {e}") from e
    if jax.process_index() == 0:
        for step in mngr.all_steps():
            if not manifest.exists(step_dir(mngr, step)):
                manifest.write(step_dir(mngr, step))


def save(mngr: ocp.CheckpointManager, step: int, state: Any, data_iter: Any | None,
         config: ml_collections.ConfigDict, *, force: bool = False) -> bool:
    finish(mngr)  # orbax would wait for the previous save here anyway
    items = dict(state=ocp.args.StandardSave(state),
                 config=ocp.args.JsonSave(json.loads(config.to_json())))
    if data_iter is not None:
        items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    return mngr.save(step, args=ocp.args.Composite(**items), force=force)


def _leaf_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def shapes_and_dtypes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """{'params/dit/blocks/0/attn/0/qkv/kernel/value': (shape, dtype)}: stored metadata and
    abstract targets flatten to the same names."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(_leaf_name(k) for k in path): (tuple(leaf.shape), str(leaf.dtype)) for path, leaf in flat}


def check_compatible(mngr: ocp.CheckpointManager, step: int, abstract_state: Any) -> None:
    """Refuse a restore whose target differs from the checkpoint in any name, shape or dtype."""
    stored_meta = ocp.StandardCheckpointHandler().metadata(mngr.directory / str(step) / "state")
    stored = shapes_and_dtypes(getattr(stored_meta, "item_metadata", stored_meta))
    wanted = shapes_and_dtypes(abstract_state)
    problems = [f"{name}: checkpoint {stored[name][0]} {stored[name][1]}, config {wanted[name][0]} "
                f"{wanted[name][1]}" for name in sorted(set(stored) & set(wanted)) if stored[name] != wanted[name]]
    problems += [f"{name}: in the checkpoint, not in the config's state" for name in sorted(set(stored) - set(wanted))]
    problems += [f"{name}: in the config's state, not in the checkpoint" for name in sorted(set(wanted) - set(stored))]
    if problems:
        raise CheckpointMismatch(
            f"checkpoint {step_dir(mngr, step)} does not fit this config ({len(problems)} arrays differ): "
            + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state: Any, data_iter: Any | None = None) -> Any:
    check_compatible(mngr, step, abstract_state)
    manifest.verify(step_dir(mngr, step))
    items = dict(state=ocp.args.StandardRestore(abstract_state))
    if data_iter is not None:
        items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
    restored = mngr.restore(step, args=ocp.args.Composite(**items))
    return restored["state"]


def restore_config(workdir: str, step: int | None = None) -> ml_collections.ConfigDict:
    """The config a checkpoint was written with (the workdir's config.json otherwise)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir}: no config.json; is this a vdm workdir?")
    with open(path) as f:
        saved = json.load(f)
    fill_added_fields(saved, path)
    return ml_collections.ConfigDict(saved)


def read_state(workdir: str, step: int | None = None, config: ml_collections.ConfigDict | None = None,
               mesh=None) -> tuple[Any, Any, int]:
    """(graphdef, state, step): the whole training state saved at ``step`` (default: the
    latest) on ``mesh`` (default: one device), verified, read without touching the run
    (it may still be training). ``config`` defaults to the workdir's own."""
    from vdm import sharding
    from vdm.train.state import create_abstract_state  # here, not at the top: it pulls in the model

    config = config if config is not None else restore_config(workdir)
    mesh = mesh if mesh is not None else sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    mngr = reader(workdir)
    try:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{workdir}: no checkpoint found in {mngr.directory}")
        if step not in mngr.all_steps():
            raise FileNotFoundError(f"{workdir}: no checkpoint at step {step}; have {sorted(mngr.all_steps())}")
        graphdef, target = create_abstract_state(config, mesh)
        return graphdef, restore(mngr, step, target), step
    finally:
        mngr.close()


def load_state(workdir: str, step: int, config: ml_collections.ConfigDict | None = None) -> Any:
    """``read_state``'s state at ``step``, fetched to the host: for checks and tools."""
    return jax.device_get(read_state(workdir, step, config)[1])


def array_digests(tree: Any) -> dict[str, str]:
    """sha256 of every array of ``tree`` by its path: equal dicts mean bitwise-equal trees."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
            for path, x in flat}


def close(mngr: ocp.CheckpointManager) -> None:
    """Wait for pending saves (raising CheckpointError if one failed), then close."""
    try:
        finish(mngr)
    finally:
        mngr.close()
