"""tools/evaluate.py on a trained smoke run, and evaluation every N steps during training."""
import importlib.util
import json
import os
import sys

import pytest

from configs import shapes_t2v
from vdm.train.loop import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(name):
    if os.path.join(ROOT, "tools") not in sys.path:  # tools import their _bootstrap
        sys.path.append(os.path.join(ROOT, "tools"))
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    c = shapes_t2v.get_config("smoke")
    c.data.data_dir = str(tmp_path_factory.mktemp("data"))
    # test_train's run, so that the compiled programs come from the compilation cache.
    c.train.update(num_steps=4, ckpt_every=100, sample_every=2)
    c.eval.every = 2
    workdir = str(tmp_path_factory.mktemp("run"))
    train(c, workdir)
    return c, workdir


def test_training_evaluates_every_n_steps(run):
    c, workdir = run
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    evaluated = sorted(r["step"] for r in rows if "eval/color_adherence" in r)
    assert evaluated == [2, 4]
    final = [r for r in rows if "eval/frechet" in r]
    assert all(r["eval/frechet"] >= 0 and "eval/background_flicker" in r for r in final)
    # Per-frame curves stay out of the scalar log.
    assert not any(isinstance(v, list) for r in rows for v in r.values())
    stats = os.listdir(os.path.join(c.data.data_dir, "frechet_stats"))
    assert len(stats) == 1 and "frames_4" in stats[0] and "random_conv" in stats[0]


def test_evaluate_tool_writes_json_and_table(run, tmp_path, capsys):
    c, workdir = run
    out = str(tmp_path / "eval")
    tool = load_tool("evaluate")
    rc = tool.main(["--workdir", workdir, "--num", "4", "--shots", "2", "--data_dir", c.data.data_dir,
                    "--out", out])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| frechet |" in printed and "| identity_across_shots |" in printed
    with open(os.path.join(out, "metrics_step_0000004.json")) as f:
        m = json.load(f)
    assert m["step"] == 4 and m["num_samples"] == 4
    for key in ("color_adherence", "frechet", "background_flicker", "identity_across_shots",
                "drift/color_presence_slope"):
        assert key in m, key
    assert len(m["per_frame"]["t2v"]["color_presence"]) == c.data.num_frames
    assert 0.0 <= m["identity_across_shots"] <= 1.0
    # Bad input names the problem.
    assert tool.main(["--workdir", workdir, "--step", "7", "--data_dir", c.data.data_dir]) == 2
    assert "no checkpoint at step 7" in capsys.readouterr().err
    assert tool.main(["--workdir", workdir, "--tasks", "edit", "--data_dir", c.data.data_dir]) == 2
    assert "not possible" in capsys.readouterr().err


def test_evaluate_tool_raw_weights_write_beside_ema(run, monkeypatch):
    c, workdir = run
    from vdm.sampling import Generator

    loaded = []
    real = Generator.from_workdir.__func__

    def spy(cls, *args, **kwargs):
        loaded.append(kwargs.get("use_ema", True))
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(Generator, "from_workdir", classmethod(spy))
    ema_json = os.path.join(workdir, "eval", "metrics_step_0000004.json")
    ema_before = open(ema_json).read() if os.path.exists(ema_json) else None
    tool = load_tool("evaluate")
    assert tool.main(["--workdir", workdir, "--num", "2", "--tasks", "t2v", "--raw",
                      "--data_dir", c.data.data_dir]) == 0
    assert loaded == [False]
    # The raw-weight scores go beside the EMA ones, never over them.
    assert os.path.exists(os.path.join(workdir, "eval_raw", "metrics_step_0000004.json"))
    ema_after = open(ema_json).read() if os.path.exists(ema_json) else None
    assert ema_after == ema_before


def test_evaluate_tool_samples_another_way_into_its_own_folder(run, monkeypatch, capsys):
    c, workdir = run
    from vdm.sampling import Generator

    seen = []
    real = Generator.generate

    def spy(self, *args, **kwargs):
        seen.append((self.config.sample.sampler, self.config.sample.steps, self.config.conditions.text.guidance))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Generator, "generate", spy)
    tool = load_tool("evaluate")
    args = ["--workdir", workdir, "--num", "2", "--tasks", "t2v", "--data_dir", c.data.data_dir]
    assert tool.main(args + ["--set", "sample.sampler=ddpm", "--set", "sample.steps=3",
                             "--set", "conditions.text.guidance=1.5"]) == 0
    assert seen and set(seen) == {("ddpm", 3, 1.5)}
    folder = os.path.join(workdir, "eval_sampler=ddpm,steps=3,conditions.text.guidance=1.5")
    assert os.path.exists(os.path.join(folder, "metrics_step_0000004.json"))
    assert folder in capsys.readouterr().out
    # Only how the model is sampled may change, and a typo is named before anything runs.
    seen.clear()
    assert tool.main(args + ["--set", "model.hidden=64"]) == 2
    assert "cannot override 'model.hidden'" in capsys.readouterr().err
    assert tool.main(args + ["--set", "sample.smapler=ddpm"]) == 2
    assert "smapler" in capsys.readouterr().err
    assert tool.main(args + ["--set", "sample.steps=many"]) == 2
    assert "sample.steps" in capsys.readouterr().err
    assert seen == []
