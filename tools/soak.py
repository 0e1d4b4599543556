"""Soak test: a run stopped by SIGTERM and resumed several times ends bitwise equal to an
uninterrupted run of the same steps.

    python tools/soak.py --workdir runs/soak --config configs/quickstart.py \
        --steps 2000 --ckpt_every 70 --cycles 3

Runs ``tools/train.py`` twice from scratch in WORKDIR/reference (uninterrupted) and
WORKDIR/interrupted (SIGTERM at evenly spaced steps, then resumed; checkpoints every
``--ckpt_every`` steps). Choose ``--steps`` for the duration wanted (the quickstart model
runs ~3 steps/s on a 2-core CPU: 30 minutes ~ 5000 steps for both runs together) and
``--ckpt_every`` for about one checkpoint a minute. The config's ``num_steps`` is set to
``steps + 1`` and both runs stop at ``steps``, so that the final evaluation is not part of
the soak. Prints one JSON line of figures; exit code 0 only if every loss and every array
of the final state (parameters, optimizer, EMA, step, RNG) match bitwise.
"""
import _bootstrap  # noqa: F401

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Run:
    """tools/train.py in a child process, its output read line by line."""

    def __init__(self, workdir: str, args: list[str], log):
        cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--workdir", workdir, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines: queue.Queue = queue.Queue()
        self.log = log
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_step(self, step: int) -> bool:
        """True once the run logged ``step``; False if it ended first."""
        while (line := self.lines.get()) is not None:
            m = re.match(r"step (\d+)/", line)
            if m and int(m.group(1)) >= step:
                return True
        return False

    def finish(self, timeout: float | None = None) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


def state_digests(workdir: str, step: int) -> dict[str, str]:
    from vdm.train import checkpoint

    return checkpoint.array_digests(checkpoint.load_state(workdir, step))


def latest_step(workdir: str) -> int | None:
    """The newest committed checkpoint (orbax renames a step's folder to its bare number on commit)."""
    steps = [int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit()]
    return max(steps, default=None)


def losses(workdir: str) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "quickstart.py"))
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--ckpt_every", type=int, required=True)
    p.add_argument("--cycles", type=int, default=3, help="SIGTERM/resume cycles")
    p.add_argument("--set", action="append", default=[], help="more config overrides, e.g. train.batch_size=8")
    p.add_argument("--grace_s", type=float, default=30.0,
                   help="a run told to stop (SIGTERM) must have saved and exited within this")
    args = p.parse_args(argv)
    if args.steps < args.cycles + 1 or args.ckpt_every < 1:
        p.error("need --steps > --cycles and --ckpt_every >= 1")

    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    config_args = ["--config", args.config, f"--config.train.num_steps={args.steps + 1}",
                   f"--config.train.ckpt_every={args.ckpt_every}", "--config.train.log_every=1",
                   *(f"--config.{s}" for s in args.set)]
    ref_dir, int_dir = (os.path.join(args.workdir, n) for n in ("reference", "interrupted"))
    figures: dict = {"steps": args.steps, "ckpt_every": args.ckpt_every, "cycles": []}
    with open(os.path.join(args.workdir, "soak.log"), "w") as log:
        t0 = time.time()
        rc = Run(ref_dir, config_args + [f"--stop_after={args.steps}"], log).finish()
        figures["reference_wall_s"] = round(time.time() - t0, 1)
        if rc != 0:
            print(f"error: the reference run failed (exit {rc}); see {log.name}", file=sys.stderr)
            return 1

        t0 = time.time()
        step, stops = 0, [args.steps * (i + 1) // (args.cycles + 1) for i in range(args.cycles)]
        for stop in stops + [None]:
            run = Run(int_dir, config_args + [f"--stop_after={args.steps - step}"], log)
            if stop is None:
                rc = run.finish()
                cycle = {"resumed_from": step, "exit": rc}
            else:
                if not run.wait_for_step(stop):
                    print(f"error: the run ended before step {stop}; see {log.name}", file=sys.stderr)
                    return 1
                t_signal = time.time()
                run.proc.send_signal(signal.SIGTERM)
                rc = run.finish(args.grace_s)
                saved = latest_step(int_dir)
                cycle = {"resumed_from": step, "sigterm_at_step": stop, "saved_step": saved, "exit": rc,
                         "sigterm_to_exit_s": round(time.time() - t_signal, 1)}
                step = saved
            figures["cycles"].append(cycle)
            if rc != 0:
                print(f"error: exit code {rc} ({cycle}); see {log.name}", file=sys.stderr)
                return 1
        figures["interrupted_wall_s"] = round(time.time() - t0, 1)

    a, b = losses(ref_dir), losses(int_dir)
    figures["losses_equal"] = sorted(a) == sorted(b) == list(range(1, args.steps + 1)) and a == b
    da, db = state_digests(ref_dir, args.steps), state_digests(int_dir, args.steps)
    figures["arrays"] = len(da)
    figures["arrays_differing"] = [k for k in da if da[k] != db.get(k)]
    figures["final_state_equal"] = da == db
    print(json.dumps(figures))
    return 0 if figures["losses_equal"] and figures["final_state_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
