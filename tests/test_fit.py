"""tools/fit.py: per-device memory and FLOPs of a config on a mesh, from a compile only."""
import json
import math
import os
import subprocess
import sys

import jax
import pytest

from configs import shapes_t2v
from vdm.train.state import abstract_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_fit(*args):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)   # the tool forces its own device count
    return subprocess.run([sys.executable, "tools/fit.py", "--config", "configs/shapes_t2v.py:smoke", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_fit_reports_sharded_memory_and_flops():
    out = run_fit("--mesh", "data=2,fsdp=2,tensor=2", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "per device:" in out.stdout and "optimizer state" in out.stdout
    report = json.loads(out.stdout.strip().splitlines()[-1])
    config = shapes_t2v.get_config("smoke")
    _, params = abstract_model(config)
    n_params = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
    assert report["devices"] == 8 and report["parameters"] == n_params
    total = 4 * n_params   # float32
    # FSDP x tensor split the large matrices 4 ways; small vectors stay whole.
    assert total / 4 <= report["params_bytes"] < total / 2
    assert report["ema_bytes"] == report["params_bytes"]
    assert 2 * report["params_bytes"] <= report["opt_state_bytes"] <= 2 * report["params_bytes"] + 64
    # Batch 8 over data x fsdp = 4: 2 clips of 4x16x16x3 float32, 48 text ids and mask bytes each.
    assert report["batch_bytes"] == 2 * (4 * 16 * 16 * 3 * 4 + 48 * 4 + 48)
    assert report["temp_bytes"] > report["batch_bytes"] and report["flops_per_device"] > 1e6


@pytest.mark.parametrize("mesh, message", [
    ("data=2,dta=2", "want NAME=SIZE"),
    ("data=-1", "needs --devices"),
    ("data=2,tensor=4", "num_heads=2 is not divisible by mesh tensor=4"),
])
def test_fit_names_bad_meshes(mesh, message):
    out = run_fit("--mesh", mesh)
    assert out.returncode == 2 and message in out.stderr
