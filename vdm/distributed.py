"""Multi-process start-up: one process per host (or per accelerator), one global mesh.

Call ``initialize`` before anything touches a JAX device. In order:

1. explicit ``coordinator`` / ``num_processes`` / ``process_id`` (the ``tools/train.py``
   flags), or the same from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
   ``JAX_PROCESS_ID``;
2. a cluster JAX can describe itself (SLURM with several tasks, Open MPI with several
   ranks, a multi-host TPU slice): ``jax.distributed.initialize()`` finds the rest;
3. otherwise a single process: nothing to do.

Processes on a CPU-only platform (tests, a laptop) talk through gloo.
"""
from __future__ import annotations

import os
from typing import Mapping

import jax


def detected_cluster(env: Mapping[str, str]) -> str | None:
    """The multi-process cluster this environment belongs to, or None for a single process."""
    if "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "openmpi"
    if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
        return "tpu"
    return None


def explicit_options(coordinator: str | None, num_processes: int | None, process_id: int | None,
                     env: Mapping[str, str]) -> dict | None:
    """Coordinator address, process count and id from the arguments, else the JAX_* variables;
    None if neither gives any. All three or none: a partial set is an error naming what is missing."""
    values = {
        "coordinator_address": coordinator or env.get("JAX_COORDINATOR_ADDRESS"),
        "num_processes": num_processes if num_processes is not None else env.get("JAX_NUM_PROCESSES"),
        "process_id": process_id if process_id is not None else env.get("JAX_PROCESS_ID"),
    }
    given = {k: v for k, v in values.items() if v not in (None, "")}
    if not given:
        return None
    missing = sorted(set(values) - set(given))
    if missing:
        raise ValueError(f"multi-process start-up needs coordinator, num_processes and process_id; "
                         f"got {given}, missing {missing}")
    n, i = int(given["num_processes"]), int(given["process_id"])
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"process_id={i} must be in [0, num_processes={n})")
    return {"coordinator_address": given["coordinator_address"], "num_processes": n, "process_id": i}


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: int = 300,
               env: Mapping[str, str] | None = None) -> str:
    """Join the other processes of this run; returns how: 'explicit', a cluster name, or 'single'."""
    env = os.environ if env is None else env
    options = explicit_options(coordinator, num_processes, process_id, env)
    cluster = None if options else detected_cluster(env)
    if options is None and cluster is None:
        return "single"
    if env.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**(options or {}), initialization_timeout=timeout_s)
    return "explicit" if options else cluster
