"""The ablation harness: expansion, naming, hashing, skip-if-done, collection and plots."""
import importlib.util
import json
import os
import sys

import ml_collections
import numpy as np
import pytest
from PIL import Image

from vdm import sweep as sw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWEEP_FILE = '''
from vdm.sweep import Plot, Sweep, product

SWEEPS = [Sweep(
    name="layouts",
    base="configs/shapes_t2v.py:smoke",
    points=product({"model.layout": ["joint", "sequential"]}, **{"data.num_frames": [2, 4]}),
    fixed={"train.num_steps": 3},
    metrics=["color_adherence", "train_step_s"],
    plots=[Plot(x="data.num_frames", y=["color_adherence"], series="model.layout"),
           Plot(x="frame", y=["per_frame/t2v/color_presence"], series="model.layout")],
)]
CLUSTER = [Sweep(name="layouts", base="configs/shapes_t2v_cluster.py",
                 points=[{"model.layout": "joint"}, {"config": "configs/shapes_t2v.py", "model.depth": 2}])]
'''


def load_tool(name):
    if os.path.join(ROOT, "tools") not in sys.path:
        sys.path.append(os.path.join(ROOT, "tools"))
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "my_topic" / "sweep.py"
    path.parent.mkdir()
    path.write_text(SWEEP_FILE)
    return str(path)


def test_product_and_expansion(sweep_file, tmp_path):
    assert sw.product({"a.b": [1, 2]}, c=["x"]) == [{"a.b": 1, "c": "x"}, {"a.b": 2, "c": "x"}]
    topic, sweeps = sw.load_sweep_file(sweep_file)
    assert topic == "my_topic" and [s.name for s in sweeps] == ["layouts"]
    runs = sw.expand(topic, sweeps[0], root=str(tmp_path / "runs"))
    assert len(runs) == 4
    names = [r.name for r in runs]
    assert names[0].startswith("layout=joint,num_frames=2-") and len(names[0].split("-")[-1]) == 8
    assert len(set(names)) == 4
    r = runs[0]
    assert r.config.train.num_steps == 3 and r.config.model.layout == "joint" and r.config.data.num_frames == 2
    assert r.workdir == os.path.join(str(tmp_path / "runs"), "my_topic", "layouts", r.name)
    # The same point gives the same name; a --set override changes the hash, not the label.
    again = sw.expand(topic, sweeps[0], root="elsewhere")
    assert [a.name for a in again] == names
    quick = sw.expand(topic, sweeps[0], root="r", extra=sw.parse_set(["train.num_steps=1"]))
    assert quick[0].config.train.num_steps == 1
    assert quick[0].name.split("-")[0] == names[0].split("-")[0] and quick[0].name != names[0]
    # A variant with more settings fixed: the points and their labels stay, the hash moves.
    longer = sweeps[0].with_fixed({"train.num_steps": 5, "train.log_every": 1})
    assert sweeps[0].fixed == {"train.num_steps": 3}
    assert longer.fixed == {"train.num_steps": 5, "train.log_every": 1}
    longer_runs = sw.expand(topic, longer, root="r")
    assert [n.name.split("-")[0] for n in longer_runs] == [n.split("-")[0] for n in names]
    assert longer_runs[0].config.train.num_steps == 5 and longer_runs[0].name != names[0]
    # The wandb group does not change what a run computes, so not its hash either.
    c = runs[0].config
    assert sw.config_hash(sw.apply_overrides(c, {"wandb.group": "x"})) == sw.config_hash(c)


def test_a_field_added_at_its_old_behaviour_keeps_run_names():
    """A finished run must not be renamed (and rerun) because the codebase grew a knob that
    it leaves at the behaviour from before; set to anything else, the knob renames it."""
    from vdm.config_upgrade import ADDED_FIELDS

    c = sw.load_config("configs/quickstart.py")
    assert c.model.out_conv == ADDED_FIELDS["model.out_conv"]
    older = ml_collections.ConfigDict(c.to_dict())
    del older.model["out_conv"]  # the config as it was before the field existed
    assert sw.config_hash(older) == sw.config_hash(c)
    assert sw.config_hash(sw.apply_overrides(c, {"model.out_conv": 16})) != sw.config_hash(c)
    assert sw.config_hash(sw.apply_overrides(c, {"model.hidden": 64})) != sw.config_hash(c)


def test_bad_overrides_are_named(tmp_path):
    c = sw.load_config("configs/quickstart.py")
    with pytest.raises(KeyError, match="model.layuot"):
        sw.apply_overrides(c, {"model.layuot": "joint"})
    with pytest.raises(TypeError, match="train.num_steps"):
        sw.apply_overrides(c, {"train.num_steps": "many"})
    with pytest.raises(ValueError, match="key=value"):
        sw.parse_set(["train.num_steps"])
    assert sw.parse_set(["model.patch_size=(1,2,2)", "model.layout=joint"]) == {
        "model.patch_size": (1, 2, 2), "model.layout": "joint"}
    with pytest.raises(ValueError, match="tool"):
        sw.Sweep(name="x", base="configs/quickstart.py", points=[{}], tool="fit")


def test_commands_and_cluster_variant(sweep_file, capsys):
    tool = load_tool("sweep")
    assert tool.main([sweep_file, "--print", "--root", "R"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("python tools/train.py --config configs/shapes_t2v.py:smoke --workdir R/my_topic/layouts/")
    for flag in ("--config.train.num_steps=3", "--config.model.layout=joint", "--config.data.num_frames=2",
                 "--config.wandb.group=my_topic"):
        assert flag in lines[0]
    assert tool.main([sweep_file, "--print", "--cluster", "--root", "R"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "--config configs/shapes_t2v_cluster.py " in lines[0]
    # A point with its own base config is named by it.
    assert "--config configs/shapes_t2v.py " in lines[1] and "/config=shapes_t2v,depth=2-" in lines[1]
    assert tool.main([sweep_file, "--print", "--only", "nope"]) == 2
    assert "the sweeps are ['layouts']" in capsys.readouterr().err


def fake_run(run, color, steps_per_s=2.0):
    """What a finished training run leaves: its final eval JSON and metrics.jsonl."""
    T = run.config.data.num_frames
    os.makedirs(os.path.join(run.workdir, "eval"), exist_ok=True)
    with open(sw.result_path(run), "w") as f:
        json.dump({"step": run.config.train.num_steps, "tasks": ["t2v"], "color_adherence": color,
                   "per_frame": {"t2v": {"color_presence": [color] * T}}}, f)
    with open(os.path.join(run.workdir, "metrics.jsonl"), "w") as f:
        for step in (1, 2, 3):
            f.write(json.dumps({"step": step, "loss": 1.0 / step, "steps_per_s": steps_per_s}) + "\n")
        f.write(json.dumps({"step": 3, "train_wall_s": 12.5, "final_step": 3}) + "\n")


def test_skip_if_done_and_collect(sweep_file, tmp_path, capsys):
    topic, sweeps = sw.load_sweep_file(sweep_file)
    root = str(tmp_path / "runs")
    runs = sw.expand(topic, sweeps[0], root=root)
    assert not any(sw.is_done(r) for r in runs)
    for i, r in enumerate(runs):
        fake_run(r, color=0.25 * i)
    assert all(sw.is_done(r) for r in runs)
    m = sw.final_metrics(runs[1])
    assert m["color_adherence"] == 0.25 and m["train_step_s"] == 0.5 and m["final_loss"] == pytest.approx(1 / 3)
    # Compute per step is each point's analytic count, not read off the noisy timings: the
    # 4-frame run's model on its own clip; more frames and a second attention per block cost more.
    from vdm import flops
    from vdm.mfu import abstract_denoiser

    c = runs[1].config
    model = abstract_denoiser(c)
    T, H, W = 4, model.dit.input_size[1], model.dit.input_size[2]
    expected = flops.train_step_flops(model, c.train.batch_size, (T, H, W), c.data.text_max_len)
    assert m["train_gflop_per_step"] == pytest.approx(expected / 1e9, rel=1e-12)
    gflop = [sw.final_metrics(r)["train_gflop_per_step"] for r in runs]  # joint 2, 4; sequential 2, 4
    assert gflop[0] < gflop[1] < gflop[3] and gflop[0] < gflop[2] < gflop[3]
    assert m["per_frame/task/color_presence"] == [0.25] * 4  # run 1: joint, 4 frames
    # Every point done: the tool runs nothing and only collects.
    tool = load_tool("sweep")
    assert tool.main([sweep_file, "--root", root]) == 0
    out = capsys.readouterr().out
    assert out.count("done before, skipped") == 4 and "running" not in out
    folder = os.path.dirname(sweep_file)
    md = open(os.path.join(folder, "results.md")).read()
    assert "| layout | num_frames | color_adherence | train_step_s | run |" in md
    assert "| joint | 2 | 0 | 0.5 |" in md and "| sequential | 4 | 0.75 | 0.5 |" in md
    assert "![layouts](plot_layouts.png)" in md
    image = np.asarray(Image.open(os.path.join(folder, "plot_layouts.png")))
    assert image.ndim == 3 and image.shape[1] >= 800 and (image != 255).any()
    # A run whose folder is not here (run on another machine, or cleaned) keeps its row from
    # the previous results.md, marked, and stays in the plot; collecting again keeps it again.
    os.remove(sw.result_path(runs[3]))
    for _ in range(2):
        sw.collect(topic, sweeps, {"layouts": runs}, folder)
        md = open(os.path.join(folder, "results.md")).read()
        assert f"| sequential | 4 | 0.75 | 0.5 | `{runs[3].name}` (kept) |" in md
        assert f"| joint | 2 | 0 | 0.5 | `{runs[0].name}` |" in md and "not run" not in md
    assert sw.previous_rows(os.path.join(folder, "results.md"))[runs[3].name]["color_adherence"] == 0.75
    kept_plot = np.asarray(Image.open(os.path.join(folder, "plot_layouts.png")))
    # The first panel (color_adherence, a table column) is drawn as before; per-frame curves
    # are not in the table, so the kept run has none.
    half = image.shape[1] // 2
    assert np.array_equal(kept_plot[:, :half], image[:, :half])
    # A run never collected anywhere shows as not run, and is not plotted.
    os.remove(os.path.join(folder, "results.md"))
    sw.collect(topic, sweeps, {"layouts": runs}, folder)
    md = open(os.path.join(folder, "results.md")).read()
    assert f"| sequential | 4 | not run | not run | `{runs[3].name}` |" in md
    assert not np.array_equal(np.asarray(Image.open(os.path.join(folder, "plot_layouts.png")))[:, :half],
                              image[:, :half])


def test_identical_runs_of_one_file_share_a_folder(tmp_path, capsys):
    """A second sweep's point that resolves to a run of the first is trained once."""
    path = tmp_path / "shared" / "sweep.py"
    path.parent.mkdir()
    path.write_text("""
from vdm.sweep import Sweep
SWEEPS = [Sweep(name="depth", base="configs/shapes_t2v.py:smoke",
                points=[{"model.depth": 1}, {"model.depth": 2}], fixed={"train.num_steps": 3}),
          Sweep(name="steps", base="configs/shapes_t2v.py:smoke",
                points=[{"train.num_steps": 3}, {"train.num_steps": 4}], fixed={"model.depth": 2})]
""")
    root = str(tmp_path / "runs")
    topic, sweeps = sw.load_sweep_file(str(path))
    runs_of = sw.share_identical_runs({s.name: sw.expand(topic, s, root=root) for s in sweeps})
    (d1, d2), (s3, s4) = runs_of["depth"], runs_of["steps"]
    assert s3.workdir == d2.workdir == os.path.join(root, "shared", "depth", d2.name)
    assert s3.name.startswith("num_steps=3-") and s3.name.split("-")[1] == d2.name.split("-")[1]
    assert len({d1.workdir, d2.workdir, s4.workdir}) == 3
    assert s4.workdir == os.path.join(root, "shared", "steps", s4.name)
    tool = load_tool("sweep")
    assert tool.main([str(path), "--root", root, "--print"]) == 0
    assert capsys.readouterr().out.count(f"--workdir {d2.workdir} ") == 2
    # --only the second sweep still finds its shared point in the first sweep's folder.
    assert tool.main([str(path), "--root", root, "--print", "--only", "steps"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split("--workdir ")[1].startswith(d2.workdir + " ")
    for r in (d1, d2, s4):
        fake_run(r, color=0.5)
    assert sw.is_done(s3)
    assert tool.main([str(path), "--root", root]) == 0
    out = capsys.readouterr().out
    assert out.count("done before, skipped") == 4 and "running" not in out
    md = open(tmp_path / "shared" / "results.md").read()
    assert f"`{s3.name}`" in md and f"`{d2.name}`" in md and "not run" not in md
    # --only runs one sweep's points and still writes every sweep's table.
    assert tool.main([str(path), "--root", root, "--only", "steps"]) == 0
    assert capsys.readouterr().out.count("done before, skipped") == 2
    assert open(tmp_path / "shared" / "results.md").read() == md


def test_a_failing_point_is_reported(tmp_path, capsys):
    path = tmp_path / "broken" / "sweep.py"
    path.parent.mkdir()
    # A point that passes the harness's checks but fails in training: 3 frames with tubelets of 2.
    path.write_text(SWEEP_FILE.replace('"data.num_frames": [2, 4]', '"model.patch_size": [(2, 4, 4)]')
                    .replace('["joint", "sequential"]', '["joint"]').replace(
                        'fixed={"train.num_steps": 3}', 'fixed={"train.num_steps": 3, "data.num_frames": 3}'))
    tool = load_tool("sweep")
    rc = tool.main([str(path), "--root", str(tmp_path / "runs")])
    captured = capsys.readouterr()
    assert rc == 1 and "FAILED" in captured.out and "1 runs failed" in captured.err
    assert "not run" in open(tmp_path / "broken" / "results.md").read()


@pytest.mark.parametrize("cluster", [False, True])
@pytest.mark.parametrize("topic", sorted(d for d in os.listdir(os.path.join(ROOT, "experiments"))
                                         if os.path.exists(os.path.join(ROOT, "experiments", d, "sweep.py"))))
def test_every_experiment_expands(topic, cluster, monkeypatch, tmp_path):
    """Each shipped experiment's points apply to their base configs (a renamed or mistyped
    config key fails here, not an hour into a sweep)."""
    monkeypatch.chdir(ROOT)
    name, sweeps = sw.load_sweep_file(os.path.join("experiments", topic, "sweep.py"), cluster=cluster)
    assert sweeps
    for s in sweeps:
        runs = sw.expand(name, s, root=str(tmp_path))
        assert len(runs) == len(s.points)
        for r in runs:
            for key, value in r.all_overrides.items():
                got = r.config_value(key)
                assert list(got) == list(value) if isinstance(value, (list, tuple)) else got == value, key


def test_training_curves_against_step_and_wall_time(sweep_file, tmp_path):
    """A run's logged loss as a curve: against its step or its wall time since the first row,
    each point the mean of ``smooth`` consecutive ones."""
    topic, sweeps = sw.load_sweep_file(sweep_file)
    runs = sw.expand(topic, sweeps[0], root=str(tmp_path / "runs"))[:2]
    for i, run in enumerate(runs):
        fake_run(run, color=0.5)
        with open(os.path.join(run.workdir, "metrics.jsonl"), "w") as f:
            f.write(json.dumps({"step": 1, "time": 100.0, "compile_s": 30.0}) + "\n")
            for step in (50, 100, 150):
                f.write(json.dumps({"step": step, "time": 100.0 + (1 + i) * step, "loss": (1 + i) / step}) + "\n")
    results = [sw.final_metrics(r) for r in runs]
    assert results[1]["curve/step"] == [50, 100, 150]
    assert results[1]["curve/wall_s"] == [100.0, 200.0, 300.0]
    assert results[1]["curve/loss"] == pytest.approx([2 / 50, 2 / 100, 2 / 150])
    by_step = sw.plot_panels(runs, results, sw.Plot(x="curve/step", y=["curve/loss"], series="model.layout", smooth=2))
    (panel,) = by_step
    assert sorted(panel.series) == ["joint"]  # runs 0 and 1: both joint (2 and 4 frames)
    runs_apart = sw.plot_panels(runs, results, sw.Plot(x="curve/wall_s", y=["curve/loss"],
                                                      series="data.num_frames", smooth=2))[0].series
    xs, ys = runs_apart["4"]
    assert xs == [200.0, 300.0]
    assert ys == pytest.approx([(2 / 50 + 2 / 100) / 2, (2 / 100 + 2 / 150) / 2])
    xs, ys = runs_apart["2"]
    assert xs == [100.0, 150.0] and ys == pytest.approx([(1 / 50 + 1 / 100) / 2, (1 / 100 + 1 / 150) / 2])
    # Without smoothing, every logged point; a curve against one of another length is refused.
    xs, _ = sw.plot_panels(runs, results, sw.Plot(x="curve/step", y=["curve/loss"], series="data.num_frames"))[0].series["2"]
    assert xs == [50, 100, 150]
    results[0]["curve/step"] = [50, 100]
    with pytest.raises(ValueError, match="curve/loss against curve/step: 3 values, 2 x"):
        sw.plot_panels(runs, results, sw.Plot(x="curve/step", y=["curve/loss"]))
