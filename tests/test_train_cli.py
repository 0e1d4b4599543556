"""tools/train.py on bad input: exit code 2 before JAX is imported, naming the key; and no
unsafe deserialisation anywhere in the code."""
import os
import re
import subprocess
import sys

import pytest

from launch import ROOT, child_env

BAD_OVERRIDES = [
    (["--config.train.num_stpes=3"], "unknown config key 'train.num_stpes'; did you mean 'train.num_steps'?"),
    (["--config.trian.batch_size=3"], "unknown config key 'trian.batch_size'; did you mean 'train.batch_size'?"),
    (["--config.train.num_steps=ten"], "--config.train.num_steps=ten: invalid literal for int()"),
    (["--config.train.num_steps=-5"], "train.num_steps=-5 must be >= 0"),
    (["--config.mesh.data=4", "--config.train.batch_size=6"],
     "train.batch_size=6 is not divisible by mesh data*fsdp=4"),
    (["--config.train.max_bad_steps=0"], "train.max_bad_steps=0 must be >= 1"),
    (["--config.sample.guidance_interval=(0.6,0.2)"],
     "sample.guidance_interval=(0.6, 0.2) must be (lo, hi) with 0 <= lo < hi <= 1"),
]


@pytest.mark.parametrize("overrides,message", BAD_OVERRIDES, ids=lambda x: x if isinstance(x, str) else None)
def test_bad_config_exits_2_before_jax(tmp_path, overrides, message):
    cmd = [sys.executable, "-X", "importtime", os.path.join(ROOT, "tools", "train.py"),
           "--config", os.path.join(ROOT, "configs", "quickstart.py"), "--workdir", str(tmp_path / "run"),
           *overrides]
    r = subprocess.run(cmd, env=child_env(1), capture_output=True, text=True, timeout=120)
    errors = [line for line in r.stderr.splitlines() if not line.startswith("import time:")]
    assert r.returncode == 2, r.stderr
    assert any(message in line for line in errors), errors
    imported = [line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "jax" not in imported and "vdm.train.loop" not in imported
    assert not os.path.exists(tmp_path / "run")  # nothing written


UNSAFE_LOADS = re.compile(r"\bpickle\b|(?<![\w.])eval\(|yaml\.load\(|allow_pickle\s*=\s*True|\bmarshal\.loads?\(")


def test_no_unsafe_deserialisation():
    hits = []
    for folder in ("vdm", "tools", "configs", "notebooks", "tests"):
        for root, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                path = os.path.join(root, name)
                if not name.endswith((".py", ".ipynb")) or os.path.samefile(path, __file__):
                    continue
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        if UNSAFE_LOADS.search(line):
                            hits.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
    assert hits == []
