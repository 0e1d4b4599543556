"""Non-finite losses: the update is skipped and counted; too many in a row stop the run
without ever checkpointing a NaN; loss spikes are logged."""
import json
import os

import jax
import numpy as np
import pytest

from smoke_config import smoke_config
from vdm import sharding
from vdm.train import checkpoint, loop
from vdm.train.numerics import Guard, NonFiniteTraining, non_finite_leaves
from vdm.train.state import create_abstract_state



@pytest.fixture
def nan_batches(monkeypatch):
    """Steps (1-based) whose batch gets a NaN pixel: the loss and the gradients turn NaN."""
    bad: set[int] = set()
    calls = {"n": 0}
    real = loop.device_batch

    def device_batch(batch, mesh):
        calls["n"] += 1
        if calls["n"] in bad:
            batch = dict(batch, video=batch["video"].copy())
            batch["video"][0, 0, 0, 0, 0] = np.nan
        return real(batch, mesh)

    monkeypatch.setattr(loop, "device_batch", device_batch)
    return bad


def rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r for r in map(json.loads, f) if "loss" in r}


def digests(config, workdir, step):
    state = checkpoint.load_state(workdir, step, config)
    return {name: checkpoint.array_digests(getattr(state, name)) for name in ("params", "opt_state", "ema")}, int(state.step)


def test_non_finite_updates_are_skipped_and_counted(data_dir, tmp_path, nan_batches):
    nan_batches.update({3, 4})
    wd = str(tmp_path / "run")
    c = smoke_config(data_dir, **{"train.num_steps": 8, "train.ckpt_every": 1, "train.keep_checkpoints": 10,
                           "train.max_bad_steps": 3})
    assert loop.train(c, wd, stop_after=6)["final_step"] == 6
    r = rows(wd)
    assert [r[s]["update_skipped"] for s in range(1, 7)] == [0, 0, 1, 1, 0, 0]
    assert np.isnan(r[3]["loss"]) and np.isfinite(r[5]["loss"])
    assert r[6]["skipped_updates"] == 2
    after_2, step_2 = digests(c, wd, 2)
    after_4, step_4 = digests(c, wd, 4)
    after_5, _ = digests(c, wd, 5)
    assert (step_2, step_4) == (2, 4)
    assert after_4 == after_2  # parameters, optimizer state and EMA untouched by the bad steps
    assert after_5["params"] != after_4["params"]  # and training goes on


def test_too_many_bad_steps_stop_without_a_non_finite_checkpoint(data_dir, tmp_path, nan_batches):
    nan_batches.update(range(3, 100))
    wd = str(tmp_path / "run")
    c = smoke_config(data_dir, **{"train.num_steps": 8, "train.ckpt_every": 1, "train.keep_checkpoints": 10,
                           "train.max_bad_steps": 3})
    with pytest.raises(NonFiniteTraining, match=r"steps 3-5: 3 consecutive steps with a non-finite loss"):
        loop.train(c, wd)
    mngr = checkpoint.manager(wd, keep=10)
    steps = mngr.all_steps()
    mngr.close()
    assert max(steps) <= 5
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    _, target = create_abstract_state(c, mesh)
    for step in steps:
        mngr = checkpoint.manager(wd, keep=10)
        assert non_finite_leaves(checkpoint.restore(mngr, step, target)) == [], step
        mngr.close()


def test_loss_spike_is_the_ratio_to_the_running_mean():
    guard = Guard(max_bad_steps=2, spike_decay=0.5)
    for step, loss in enumerate([1.0, 1.0, 1.0], 1):
        guard._check(step, False, loss)
    assert guard.summary() == {"skipped_updates": 0.0, "loss_spike": 1.0}
    guard._check(4, False, 5.0)
    assert guard.summary()["loss_spike"] == 5.0
    guard._check(5, True, float("nan"))
    guard._check(6, False, 1.0)  # a good step ends the streak
    guard._check(7, True, float("nan"))
    with pytest.raises(NonFiniteTraining, match="steps 7-8"):
        guard._check(8, True, float("inf"))
    assert guard.skipped_total == 3
