"""Every config loads, locks, and builds abstractly (no allocation)."""
import glob
import os
import subprocess
import sys

import jax
import pytest

from vdm.train.state import abstract_model, create_abstract_state
from vdm import sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if os.path.basename(p) not in ("__init__.py", "common.py"))
ARGS = {name: [None, "smoke"] for name in
        ("shapes_t2v.py", "shapes_i2v.py", "shapes_edit.py", "shapes_multitask.py")}


def load(path, arg=None):
    import importlib.util

    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_abstractly(path):
    for arg in ARGS.get(os.path.basename(path), [None]):
        config = load(path, arg)
        graphdef, params = abstract_model(config)
        n = sum(x.size for x in jax.tree.leaves(params))
        assert n > 1000
        mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
        _, target = create_abstract_state(config, mesh)
        assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(target))


def test_unknown_override_key_is_an_error_naming_it():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config",
         os.path.join(ROOT, "configs", "quickstart.py"), "--config.model.hiden=3", "--workdir", "/nonexistent"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "hiden" in out.stderr
