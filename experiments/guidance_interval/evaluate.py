"""Guidance in a limited noise interval: one trained benchmark model, sampled with
classifier-free guidance at every noise level or only above a noise level.

No training: each setting is an evaluation of a trained run's checkpoint
(`vdm.evaluation.runner.evaluate_checkpoint`), written to that run's
`eval_<setting>/` folder and reused when it is there. Then `results.md` and
`plot_interval.png` here are rewritten from those scores.

    python experiments/guidance_interval/evaluate.py [--workdir RUN --label NAME ...] [--step N]
"""
import os
import sys

import argparse
import json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:  # run as a script from the repository root
    sys.path.insert(0, ROOT)
# The benchmark recipe's run (configs/shapes_t2v.py, 2500 steps), where experiments/prediction_target
# put it.
DEFAULT_RUNS = ["runs/sweeps/prediction_target/target/prediction=x0,weighting=velocity-cefea82a"]
# (label, overrides). Text guidance 3 (the config's scale) unless it says otherwise.
SETTINGS = [
    ("no guidance", {"conditions.text.guidance": 1.0}),
    ("t in [0, 1]", {"sample.guidance_interval": (0.0, 1.0)}),
    ("t in [0.2, 1]", {"sample.guidance_interval": (0.2, 1.0)}),
    ("t in [0.35, 1]", {"sample.guidance_interval": (0.35, 1.0)}),
    ("t in [0.5, 1]", {"sample.guidance_interval": (0.5, 1.0)}),
    ("t in [0.7, 1]", {"sample.guidance_interval": (0.7, 1.0)}),
    ("t in [0.35, 0.9]", {"sample.guidance_interval": (0.35, 0.9)}),
    ("scale 5, t in [0.35, 1]", {"conditions.text.guidance": 5.0, "sample.guidance_interval": (0.35, 1.0)}),
]
METRICS = ["shape_adherence", "shape_recall/square", "identity_consistency", "identity_lost/shape",
           "direction_adherence", "speed_error", "color_adherence", "frechet",
           "i2v/shape_adherence", "i2v/identity_consistency"]
PLOTTED = ["shape_adherence", "identity_consistency", "direction_adherence", "i2v/identity_consistency"]


def scores(workdir: str, step: int | None, overrides: dict) -> tuple[int, dict]:
    """(step, metrics) of one setting: read from its eval folder, or evaluated now."""
    from vdm.evaluation.runner import eval_dir_name, evaluate_checkpoint

    out = os.path.join(workdir, eval_dir_name(True, overrides))
    if step is None:
        ckpts = os.path.join(workdir, "checkpoints")
        saved = [int(d) for d in os.listdir(ckpts) if d.isdigit()] if os.path.isdir(ckpts) else []
        if not saved:
            raise FileNotFoundError(f"no checkpoint in {workdir!r}")
        step = max(saved)
    path = os.path.join(out, f"metrics_step_{step:07d}.json")
    if os.path.exists(path):
        with open(path) as f:
            res = json.load(f)
        with open(os.path.join(workdir, "config.json")) as f:
            tasks = [t for t in json.load(f)["eval"].get("tasks", "").split(",") if t]
        if set(tasks) <= set(res["tasks"]):  # scored on every task the run is scored on
            return step, res
    return evaluate_checkpoint(workdir, step=step, out_dir=out, overrides=overrides)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", action="append", default=None, help="trained run(s); repeatable")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--label", action="append", default=None,
                   help="a short name per --workdir, in order, for the table and plot (default: folder@step)")
    args = p.parse_args(argv)

    from vdm.plot import Panel, save_png
    from vdm.sweep import _cell

    lines = ["# guidance_interval: results\n",
             "Written by `experiments/guidance_interval/evaluate.py`; one row per run and setting.\n",
             "| run | step | guidance | " + " | ".join(METRICS) + " |",
             "|" + "---|" * (len(METRICS) + 3)]
    series = {m: {} for m in PLOTTED}
    workdirs = args.workdir or DEFAULT_RUNS
    if args.label is not None and len(args.label) != len(workdirs):
        p.error(f"{len(args.label)} --label for {len(workdirs)} --workdir")
    for i, workdir in enumerate(workdirs):
        name = os.path.basename(os.path.normpath(workdir))
        for label, overrides in SETTINGS:
            step, res = scores(workdir, args.step, overrides)
            run_label = args.label[i] if args.label else f"{name}@{step}"
            lines.append(f"| {run_label} (`{workdir}`) | {step} | {label} | " + " | ".join(_cell(res.get(m)) for m in METRICS) + " |")
            for m in PLOTTED:
                xs, ys = series[m].setdefault(run_label, ([], []))
                xs.append(label)
                ys.append(float(res.get(m, float("nan"))))
    panels = [Panel(title=m, xlabel="text guidance", ylabel="", series=s, kind="bar") for m, s in series.items()]
    save_png(os.path.join(HERE, "plot_interval.png"), panels, columns=2)
    lines.append("\n![interval](plot_interval.png)\n")
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
