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


def scores(gen, workdir: str, overrides: dict) -> dict:
    """The metrics of one setting for a loaded run (``gen``): read from its eval folder when
    they were scored on every task the run is scored on, else evaluated now."""
    from vdm.evaluation.runner import eval_dir_name, evaluate
    from vdm.sweep import apply_overrides

    out = os.path.join(workdir, eval_dir_name(True, overrides))
    path = os.path.join(out, f"metrics_step_{gen.step:07d}.json")
    if os.path.exists(path):
        with open(path) as f:
            res = json.load(f)
        if set(t for t in gen.config.eval.tasks.split(",") if t) <= set(res["tasks"]):
            return res
    gen.config = apply_overrides(gen.config, overrides)  # the sampler reads its settings here
    return evaluate(gen, gen.config, out, step=gen.step)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", action="append", default=None, help="trained run(s); repeatable")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--label", action="append", default=None,
                   help="a short name per --workdir, in order, for the table and plot (default: folder@step)")
    args = p.parse_args(argv)

    from vdm.plot import Panel, save_png
    from vdm.sampling import Generator
    from vdm.sweep import format_cell

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
        gen = Generator.from_workdir(workdir, step=args.step)  # EMA weights, read once per run
        base, step = gen.config, gen.step
        run_label = args.label[i] if args.label else f"{name}@{step}"
        for label, overrides in SETTINGS:
            gen.config = base
            res = scores(gen, workdir, overrides)
            lines.append(f"| {run_label} (`{workdir}`) | {step} | {label} | " + " | ".join(format_cell(res.get(m)) for m in METRICS) + " |")
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
