"""End to end on the smoke config: multi-device equality, exact resume, sampling, bad input."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from smoke_config import losses, smoke_config
from vdm.sampling import Generator
from vdm.train import checkpoint
from vdm.train.loop import WorkdirConflict, train


def params_of(workdir, step=None):
    gen = Generator.from_workdir(workdir, step=step, use_ema=False)
    return jax.tree.leaves(jax.device_get(gen.params))


# Every run of this module that can shares this config, so that its programs (train step,
# sampler, evaluation) compile once and come from the compilation cache afterwards.
STEPS = {"train.num_steps": 4, "train.ckpt_every": 100, "train.sample_every": 2}


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """One 4-step run on the 8 devices (read-only for the tests: copy it to change it)."""
    wd = str(tmp_path_factory.mktemp("trained") / "run")
    train(smoke_config(data_dir, **STEPS), wd)
    return wd


def test_eight_devices_match_one(data_dir, trained, tmp_path):
    train(smoke_config(data_dir, **STEPS), str(tmp_path / "one"), devices=jax.devices()[:1])
    l1, l8 = losses(tmp_path / "one"), losses(trained)
    assert sorted(l1) == sorted(l8) == [1, 2, 3, 4]
    np.testing.assert_allclose([l8[s] for s in sorted(l8)], [l1[s] for s in sorted(l1)], rtol=2e-5)
    for a, b in zip(params_of(tmp_path / "one"), params_of(trained)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_resume_is_exact(data_dir, trained, tmp_path):
    c = smoke_config(data_dir, **STEPS)
    # Interrupted after 2 steps (checkpoint written on the way out), then resumed.
    out = train(c, str(tmp_path / "resumed"), stop_after=2)
    assert out["final_step"] == 2
    train(c, str(tmp_path / "resumed"))
    a, b = losses(trained), losses(tmp_path / "resumed")
    assert [a[s] for s in (1, 2, 3, 4)] == [b[s] for s in (1, 2, 3, 4)]  # bitwise
    for x, y in zip(*(jax.tree.leaves(checkpoint.load_state(str(wd), 4, c)) for wd in (trained, tmp_path / "resumed"))):
        np.testing.assert_array_equal(x, y)  # parameters, optimizer state, EMA, step, RNG
    # The final evaluation ran and wrote its outputs.
    assert os.path.exists(os.path.join(trained, "eval", "metrics_step_0000004.json"))
    assert os.path.exists(os.path.join(trained, "eval", "samples_step_0000004.png"))


def test_sampling_same_seed_same_clip(trained):
    assert os.path.getsize(os.path.join(trained, "samples", "step_0000002.png")) > 0  # periodic grid
    gen = Generator.from_workdir(trained)
    a = gen.generate(["a red circle moves left"], num=2, seed=3, steps=3)
    b = gen.generate(["a red circle moves left"], num=2, seed=3, steps=3)
    c2 = gen.generate(["a red circle moves left"], num=2, seed=4, steps=3)
    assert a.dtype == np.uint8 and a.shape[0] == 2
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c2)


def test_guidance_interval_in_sampling(trained):
    """Guidance over every t is the default; an interval that holds no sampler time gives
    the unguided clip (the same clip up to float rounding: it comes out of a batched call)."""
    gen = Generator.from_workdir(trained)
    prompt = ["a red circle moves left"]
    default = gen.generate(prompt, num=2, seed=3, steps=3, guidance=3.0)
    np.testing.assert_array_equal(default, gen.generate(prompt, num=2, seed=3, steps=3, guidance=3.0,
                                                        guidance_interval=(0.0, 1.0)))
    unguided = gen.generate(prompt, num=2, seed=3, steps=3, guidance=1.0).astype(int)
    never = gen.generate(prompt, num=2, seed=3, steps=3, guidance=3.0, guidance_interval=(0.0, 1e-6))
    assert np.abs(never - unguided).max() <= 1 and np.mean(never != unguided) < 0.01
    with pytest.raises(ValueError, match="guidance interval"):
        gen.generate(prompt, num=1, steps=2, guidance_interval=(0.7, 0.3))


def test_sample_cli_writes_videos(trained, tmp_path, monkeypatch):
    import importlib.util

    tools = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
    monkeypatch.syspath_prepend(tools)
    spec = importlib.util.spec_from_file_location("sample_cli", os.path.join(tools, "sample.py"))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = str(tmp_path / "clips" / "red.mp4")
    assert cli.main(["--workdir", trained, "--prompt", "a red circle moves left",
                     "--num", "2", "--steps", "2", "--guidance", "text=2", "--guidance_interval", "0.3,1",
                     "--out", out]) == 0
    for ext in ("mp4", "gif", "png"):
        assert os.path.getsize(out[:-3] + ext) > 0
    # Bad input: a clear error and exit code 2, nothing written.
    assert cli.main(["--workdir", str(tmp_path / "nope")]) == 2
    assert cli.main(["--workdir", trained, "--guidance", "source=2", "--out", str(tmp_path / "x.mp4")]) == 2
    assert cli.main(["--workdir", trained, "--guidance_interval", "0.3", "--out", str(tmp_path / "x.mp4")]) == 2
    assert not os.path.exists(tmp_path / "x.mp4")


def test_workdir_of_another_config_is_refused(data_dir, trained, tmp_path):
    wd = str(tmp_path / "run")
    shutil.copytree(trained, wd)
    other = smoke_config(data_dir, **{**STEPS, "model.hidden": 16})
    with pytest.raises(WorkdirConflict, match="model.hidden: 32 -> 16"):
        train(other, wd)
    assert os.path.isdir(os.path.join(wd, "checkpoints", "4"))  # nothing lost
    train(other, wd, overwrite=True, stop_after=1)  # the step is enough: no final evaluation
    with open(os.path.join(wd, "config.json")) as f:
        assert json.load(f)["model"]["hidden"] == 16


def test_missing_checkpoint_and_textless_prompt(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        Generator.from_workdir(str(tmp_path))
    c = smoke_config(data_dir, **{**STEPS, "conditions.text.enabled": False})
    train(c, str(tmp_path / "uncond"), stop_after=1)
    gen = Generator.from_workdir(str(tmp_path / "uncond"))
    with pytest.raises(ValueError, match="without a text condition"):
        gen.generate(["a red circle"], num=1, steps=2)
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 7"):
        Generator.from_workdir(str(tmp_path / "uncond"), step=7)


def test_bad_batch_is_named_before_compiling(data_dir, tmp_path):
    c = smoke_config(data_dir, **{"train.batch_size": 6})
    with pytest.raises(ValueError, match="batch_size=6 must be a positive multiple of data\\*fsdp"):
        train(c, str(tmp_path / "bad"))
