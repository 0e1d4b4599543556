"""One process of a 2-process training run on this machine (started by test_multiprocess.py).

usage: multiprocess_worker.py COORDINATOR PROCESS_ID DATA_DIR WORKDIR
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"   # 2 devices per process
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vdm import distributed  # noqa: E402

coordinator, process_id, data_dir, workdir = sys.argv[1:]
assert distributed.initialize(coordinator, 2, int(process_id), timeout_s=60) == "explicit"

import jax  # noqa: E402

from configs import shapes_t2v  # noqa: E402
from vdm.train.loop import train  # noqa: E402

assert jax.device_count() == 4 and jax.local_device_count() == 2
config = shapes_t2v.get_config("smoke")
config.data.data_dir = data_dir
config.mesh.update(dict(data=2, fsdp=2))   # parameters FSDP-sharded across the two processes
config.train.num_steps = 4
config.train.ckpt_every = 100
out = train(config, workdir, stop_after=2)   # 2 steps, then a checkpoint written by both processes
assert out["final_step"] == 2, out
print(f"process {process_id}: done", flush=True)
