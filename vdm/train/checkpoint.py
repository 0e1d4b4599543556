"""Checkpoints: orbax CheckpointManager over (train state, data iterator, config).

Restores always go through an abstract target built from the config and the
current mesh, so a run can move to another device count.
"""
from __future__ import annotations

import json
import os
from typing import Any

import grain
from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp

# Replica-parallel saving slices each replicated array per replica, one small compiled
# program per shape: a cost that only pays off for large arrays. (The override is
# intended; orbax warns about any override.)
_verbosity = logging.get_verbosity()
logging.set_verbosity(logging.ERROR)
ocp.type_handlers.register_type_handler(
    jax.Array, ocp.type_handlers.ArrayHandler(min_slice_bytes_for_replica_parallel=1 << 20),
    override=True)
logging.set_verbosity(_verbosity)


def manager(workdir: str, *, keep: int, async_save: bool = True) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any, data_iter: Any | None,
         config: ml_collections.ConfigDict, *, force: bool = False) -> bool:
    items = dict(state=ocp.args.StandardSave(state),
                 config=ocp.args.JsonSave(json.loads(config.to_json())))
    if data_iter is not None:
        items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    return mngr.save(step, args=ocp.args.Composite(**items), force=force)


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state: Any, data_iter: Any | None = None) -> Any:
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
        return ml_collections.ConfigDict(json.load(f))
