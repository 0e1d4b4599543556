"""Evaluate a checkpoint on the fixed, seeded test clips: grounded and task metrics,
stability (background, drift, identity across shots), Fréchet distance to the test split.

    python tools/evaluate.py --workdir runs/quickstart [--step 700] [--num 64] [--tasks t2v,i2v] [--raw]
    python tools/evaluate.py --workdir runs/quickstart --set sample.sampler=ddpm --set sample.steps=100

Writes WORKDIR/eval/metrics_step_N.{json,md} and sample grids (WORKDIR/eval_raw with --raw,
WORKDIR/eval_sampler=ddpm,steps=100 with those --set, or under --out), and prints the
markdown table. The same evaluation runs during training every `eval.every` steps.
"""
import _bootstrap  # noqa: F401

import argparse
import os
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--num", type=int, default=None, help="test clips per task (default: eval.num_samples)")
    p.add_argument("--tasks", default=None, help="comma-separated subset of t2v,i2v,predict,interpolate,edit")
    p.add_argument("--shots", type=int, default=None, help="seeds per prompt for identity across shots")
    p.add_argument("--features", default=None,
                   help="Fréchet features: random_conv (default), weights.npz, or package.module:factory")
    p.add_argument("--data_dir", default=None, help="where the dataset (and cached statistics) live")
    p.add_argument("--raw", action="store_true", help="raw weights instead of EMA")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="sample another way: sample.* (sampler, steps, shift, eta), eval.* or "
                        "conditions.<name>.guidance; repeatable")
    p.add_argument("--out", default=None, help="output folder (default WORKDIR/eval, WORKDIR/eval_raw "
                                               "with --raw, WORKDIR/eval_<settings> with --set)")
    args = p.parse_args(argv)

    from vdm.evaluation.runner import eval_dir_name, evaluate_checkpoint
    from vdm.sweep import parse_set

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    try:
        overrides = parse_set(args.set)
        out = args.out or os.path.join(args.workdir, eval_dir_name(not args.raw, overrides))
        step, metrics = evaluate_checkpoint(args.workdir, step=args.step, num=args.num, tasks=tasks,
                                            shots=args.shots, features=args.features,
                                            data_dir=args.data_dir, out_dir=out,
                                            use_ema=not args.raw, overrides=overrides)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(f"{out}/metrics_step_{step:07d}.md") as f:
        print(f.read(), end="")
    print(f"written: {out}/metrics_step_{step:07d}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
