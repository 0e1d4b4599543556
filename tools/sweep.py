"""Run an ablation sweep and collect its results.

    python tools/sweep.py experiments/attention_layout/sweep.py              # run every point
    python tools/sweep.py experiments/attention_layout/sweep.py --set train.num_steps=50
    python tools/sweep.py experiments/attention_layout/sweep.py --cluster --print   # launch lines
    python tools/sweep.py experiments/attention_layout/sweep.py --collect    # only the table

Points run one after another (each in its own process, as tools/train.py / tools/measure.py);
points whose final metrics exist are skipped. Afterwards every run's final metrics go into
experiments/<topic>/results.md and plot_<sweep>.png. See vdm/sweep.py for the sweep format.
"""
import _bootstrap  # noqa: F401

import argparse
import os
import shlex
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override for every point (e.g. train.num_steps=100); part of the run names")
    p.add_argument("--only", action="append", default=None, metavar="SWEEP", help="run only these sweeps")
    p.add_argument("--cluster", action="store_true", help="the sweep file's CLUSTER variant")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="print the launch command of every point instead of running")
    p.add_argument("--collect", action="store_true", help="do not run; rewrite results.md and plots")
    p.add_argument("--root", default="runs/sweeps", help="where run folders go")
    p.add_argument("--out", default=None, help="where results.md goes (default: the sweep file's folder)")
    args = p.parse_args(argv)

    from vdm import sweep as sw

    try:
        topic, sweeps = sw.load_sweep_file(args.sweep_file, cluster=args.cluster)
        if args.only:
            unknown = set(args.only) - {s.name for s in sweeps}
            if unknown:
                raise ValueError(f"--only {sorted(unknown)}: the sweeps are {[s.name for s in sweeps]}")
        extra = sw.parse_set(args.set)
        # Every sweep of the file is expanded and collected; --only picks what is run. So a
        # point another sweep of the file trains is found in that sweep's folder, and
        # results.md keeps the other sweeps' tables.
        runs_of = sw.share_identical_runs({s.name: sw.expand(topic, s, root=args.root, extra=extra)
                                           for s in sweeps})
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    picked = [r for name, runs in runs_of.items() if not args.only or name in args.only for r in runs]
    if args.print_only:
        for run in picked:
            print(shlex.join(sw.command(run, topic, python="python")))
        return 0
    failed = []
    if not args.collect:
        todo = picked
        for i, run in enumerate(todo, 1):
            where = f"[{i}/{len(todo)}] {run.sweep.name}/{run.name}"
            if sw.is_done(run):
                print(f"{where}: done before, skipped", flush=True)
                continue
            t0 = time.time()
            print(f"{where}: running", flush=True)
            rc = sw.execute(run, topic)
            status = "ok" if rc == 0 and sw.is_done(run) else f"FAILED (exit {rc})"
            print(f"{where}: {status} in {time.time() - t0:.0f}s; log {run.workdir}/sweep.log", flush=True)
            if status != "ok":
                failed.append(run.name)
    out = args.out or os.path.dirname(os.path.abspath(args.sweep_file))
    sw.collect(topic, sweeps, runs_of, out)
    print(f"results: {os.path.join(out, 'results.md')}")
    if failed:
        print(f"{len(failed)} runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
