"""Two processes on this machine form one 4-device mesh, train and checkpoint; the
checkpoint restores in one process on 1 and on 8 devices with the same values."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from vdm import distributed, sharding
from vdm.data import moving_shapes
from vdm.train import checkpoint
from vdm.train.state import create_abstract_state

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multiprocess_worker.py")
TIMEOUT_S = 420   # both processes together; a stuck peer would otherwise hang the run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_two_processes(data_dir, workdir):
    coordinator = f"localhost:{free_port()}"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, WORKER, coordinator, str(i), data_dir, workdir],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"2-process training did not finish in {TIMEOUT_S}s: "
                    + " | ".join((p.communicate()[0] or "")[-2000:] for p in procs))
    for i, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"process {i} exited {p.returncode}:\n{out[-4000:]}"
        assert f"process {i}: done" in out


def restore_on(workdir, shape):
    config = checkpoint.restore_config(workdir)
    n = int(np.prod(shape))
    mesh = sharding.make_mesh(dict(zip(sharding.MESH_AXES, shape)), devices=jax.devices()[:n])
    _, target = create_abstract_state(config, mesh)
    mngr = checkpoint.manager(workdir, keep=2, async_save=False)
    state = checkpoint.restore(mngr, mngr.latest_step(), target)
    mngr.close()
    for leaf, want in zip(jax.tree.leaves(state), jax.tree.leaves(target)):
        assert leaf.sharding.is_equivalent_to(want.sharding, leaf.ndim)
    return jax.device_get(state)


def test_two_processes_train_then_restore_on_any_device_count(tmp_path):
    data_dir, workdir = str(tmp_path / "data"), str(tmp_path / "run")
    moving_shapes.build("smoke", data_dir)   # once, before the processes start
    run_two_processes(data_dir, workdir)
    one = restore_on(workdir, (1, 1, 1, 1))
    assert int(one.step) == 2
    for shape in [(8, 1, 1, 1), (2, 1, 2, 2)]:
        other = restore_on(workdir, shape)
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(other)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args, env, match", [
    (("localhost:1", None, 0), {}, r"missing \['num_processes'\]"),
    ((None, None, None), {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, r"missing \['process_id'\]"),
    (("localhost:1", 2, 2), {}, r"process_id=2 must be in \[0, num_processes=2\)"),
])
def test_partial_multiprocess_options_are_named(args, env, match):
    with pytest.raises(ValueError, match=match):
        distributed.initialize(*args, env=env)


def test_single_process_and_cluster_detection():
    assert distributed.initialize(env={}) == "single"
    assert distributed.detected_cluster({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
    assert distributed.detected_cluster({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16"}) == "slurm"
    assert distributed.detected_cluster({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}) == "tpu"
    assert distributed.detected_cluster({"TPU_WORKER_HOSTNAMES": "localhost"}) is None
    assert distributed.detected_cluster({"OMPI_MCA_orte_hnp_uri": "x", "OMPI_COMM_WORLD_SIZE": "4"}) == "openmpi"
