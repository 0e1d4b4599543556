"""What survives a kill mid-save, an exception, a full disk, a flipped byte and a config of
another shape. Children run under bounded waits."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from launch import Child, ROOT, child_env
from smoke_config import smoke_config
from vdm import sharding
from vdm.sampling import Generator
from vdm.train import checkpoint, manifest
from vdm.train.loop import train
from vdm.train.numerics import non_finite_leaves
from vdm.train.state import create_abstract_state

START_S = 240  # a child's JAX start, data and compilation on a busy 2-core machine


def finalized_steps(workdir):
    return sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())


def tmp_dirs(workdir):
    return [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "orbax-checkpoint-tmp" in n]


def faulty_run(workdir, overrides, fault, step, cache):
    args = [os.path.join(ROOT, "tests", "faulty_train.py"), workdir, json.dumps(overrides), fault, str(step)]
    return Child(args, child_env(1, cache))


def test_sigkill_just_after_a_save_started(data_dir, cache, tmp_path, capsys):
    wd = str(tmp_path / "run")
    overrides = {"data.data_dir": data_dir, "train.num_steps": 8, "train.ckpt_every": 2}
    run = faulty_run(wd, overrides, "sigkill", 4, cache)
    assert run.finish(START_S) == -9, run.output
    run.wait_for("fault sigkill after starting the save of step 4", 1)
    assert finalized_steps(wd) == [2]  # the previous step stays the latest
    assert tmp_dirs(wd), "the interrupted save left no temporary directory"

    out = train(smoke_config(data_dir, **{"train.num_steps": 8, "train.ckpt_every": 2}), wd, stop_after=2)
    assert "resumed from step 2" in capsys.readouterr().out
    assert out["final_step"] == 4
    assert tmp_dirs(wd) == []  # cleaned at start
    assert finalized_steps(wd) == [2, 4]  # the next save succeeded
    assert manifest.verify(os.path.join(wd, "checkpoints", "4"))


def test_exception_waits_for_the_pending_save(data_dir, cache, tmp_path):
    wd = str(tmp_path / "run")
    overrides = {"data.data_dir": data_dir, "train.num_steps": 8, "train.ckpt_every": 2}
    run = faulty_run(wd, overrides, "raise", 2, cache)
    assert run.finish(START_S) != 0
    run.wait_for("InjectedFault: injected after starting the save of step 2", 1)
    assert finalized_steps(wd) == [2] and tmp_dirs(wd) == []  # committed before the process left
    assert manifest.verify(os.path.join(wd, "checkpoints", "2"))


def _can_mount_tmpfs(tmp_path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    r = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


def test_disk_full_names_the_path_and_keeps_the_previous_checkpoint(data_dir, cache, tmp_path):
    """A real full disk: a small tmpfs (in a private mount namespace, so that nothing else
    fills up) that random bytes fill once the checkpoint of step 2 committed."""
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    overrides = {"data.data_dir": data_dir, "train.num_steps": 4, "train.ckpt_every": 2}
    cmd = [sys.executable, os.path.join(ROOT, "tests", "faulty_train.py"), f"{disk}/run",
           shlex.quote(json.dumps(overrides)), "fill_disk", "2"]
    script = (f"mount -t tmpfs -o size=16m tmpfs {disk} && {' '.join(cmd)}; rc=$?; "
              f"rm -f {disk}/run/filler; cp -a {disk}/run {kept}; exit $rc")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=child_env(1, cache),
                       capture_output=True, text=True, timeout=START_S)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"saving a checkpoint under {disk}/run/checkpoints failed" in r.stderr, r.stderr
    assert "No space left on device" in r.stderr or "ENOSPC" in r.stderr, r.stderr
    assert finalized_steps(kept) == [2]
    state = checkpoint.load_state(str(kept), 2, smoke_config(data_dir))  # the previous checkpoint restores, verified
    assert int(state.step) == 2


def test_flipped_byte_in_array_data_is_detected(data_dir, tmp_path):
    wd = str(tmp_path / "run")
    config = smoke_config(data_dir, **{"train.num_steps": 2})
    train(config, wd, stop_after=1)  # stopped before the end: no final evaluation
    data_files = []
    for root, _, files in os.walk(os.path.join(wd, "checkpoints", "1", "state")):
        data_files += [os.path.join(root, f) for f in files if os.sep + "d" + os.sep in os.path.join(root, f)]
    target = max(data_files, key=os.path.getsize)
    with open(target, "r+b") as f:
        f.seek(os.path.getsize(target) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    rel = os.path.relpath(target, os.path.join(wd, "checkpoints", "1"))
    with pytest.raises(manifest.ChecksumMismatch, match=f"corrupt .*{rel} changed"):
        Generator.from_workdir(wd)
    with pytest.raises(manifest.ChecksumMismatch, match=f"{rel} changed"):
        train(config, wd, stop_after=1)


def test_config_of_other_shapes_is_refused_before_any_step(data_dir, tmp_path):
    wd = str(tmp_path / "run")
    train(smoke_config(data_dir, **{"train.num_steps": 2}), wd, stop_after=1)
    metrics = os.path.join(wd, "metrics.jsonl")
    rows_before = open(metrics).read()
    wider = smoke_config(data_dir, **{"train.num_steps": 2, "model.hidden": 48, "model.num_heads": 2})
    with pytest.raises(checkpoint.CheckpointMismatch,
                       match=r"does not fit this config \(\d+ arrays differ\): .*ema/dit/\S+/out/bias/value: "
                             r"checkpoint \(32,\) float32, config \(48,\) float32"):
        train(wider, wd, resume=True)
    assert open(metrics).read() == rows_before  # no step ran

    # orbax would cast float32 data into a bfloat16 target silently.
    config = smoke_config(data_dir)
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    _, target = create_abstract_state(config, mesh)
    to_bf16 = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, jnp.bfloat16, sharding=a.sharding)
                           if a.dtype == jnp.float32 else a, target)
    mngr = checkpoint.manager(wd, keep=2)
    try:
        with pytest.raises(checkpoint.CheckpointMismatch, match=r"ema/\S+: checkpoint \(.*\) float32, config .* bfloat16"):
            checkpoint.check_compatible(mngr, 1, to_bf16)
    finally:
        mngr.close()
    assert non_finite_leaves(checkpoint.load_state(wd, 1, config)) == []


def test_reading_a_training_run_leaves_its_saves_in_flight_alone(data_dir, tmp_path):
    """Sampling, evaluating or probing a run while it trains opens its checkpoints. A
    writer's manager would delete the folder of a save in flight (the run's save then
    fails on its missing files); readers must not."""
    wd = str(tmp_path / "run")
    config = smoke_config(data_dir, **{"train.num_steps": 2, "train.ckpt_every": 1})
    train(config, wd, stop_after=1)
    ckpts = os.path.join(wd, "checkpoints")
    in_flight = os.path.join(ckpts, "2.orbax-checkpoint-tmp")
    shutil.copytree(os.path.join(ckpts, "1"), in_flight)  # as the run's next save looks mid-write
    gen = Generator.from_workdir(wd)
    assert gen.step == 1
    assert int(checkpoint.load_state(wd, 1, config).step) == 1
    assert tmp_dirs(wd) == ["2.orbax-checkpoint-tmp"] and finalized_steps(wd) == [1]
    # the run's own manager does clean up (after a crash, on restart), in a background thread
    checkpoint.manager(wd, keep=2).close()
    deadline = time.monotonic() + 30
    while tmp_dirs(wd) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tmp_dirs(wd) == []
    with pytest.raises(FileNotFoundError, match="no checkpoints folder"):
        checkpoint.reader(str(tmp_path / "not_a_run"))
