"""SIGTERM stops a run with a checkpoint at a step all processes agree on; the next run
resumes from it, bitwise as if never stopped. Children run under bounded waits."""
import json
import os
import signal
import time

from launch import Child, ROOT, child_env, free_port
from smoke_config import losses
from vdm.train import checkpoint

# SIGTERM must lead to a saved checkpoint and exit 0 within a scheduler's grace period (30 s is
# common). On an idle 2-core CPU these children exit 2-4 s after the signal (the step in flight,
# the save, the wait for it); the printed time says how much of the grace period a run used.
GRACE_S = 30
# A child's start (JAX, data, compilation) on a busy 2-core machine.
START_S = 240


def cli_run(data_dir, workdir, cache, *extra):
    args = [os.path.join(ROOT, "tools", "train.py"), "--config", os.path.join(ROOT, "configs", "shapes_t2v.py:smoke"),
            "--workdir", workdir, f"--config.data.data_dir={data_dir}", "--config.train.num_steps=200",
            "--config.train.ckpt_every=1000", "--config.train.log_every=1", *extra]
    return Child(args, child_env(1, cache))


def test_sigterm_saves_and_resume_is_bitwise(data_dir, cache, tmp_path):
    stopped, straight = str(tmp_path / "stopped"), str(tmp_path / "straight")
    run = cli_run(data_dir, stopped, cache)
    run.wait_for(r"^step 3/200", START_S)
    t0 = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.finish(GRACE_S) == 0, run.output
    print(f"SIGTERM to exit: {time.monotonic() - t0:.1f} s")
    s = int(run.wait_for(r"preempted: saving step (\d+)", 1).group(1))
    assert s >= 3
    assert checkpoint.manager(stopped, keep=2).latest_step() == s

    resumed = cli_run(data_dir, stopped, cache, "--stop_after=2")
    assert resumed.finish(START_S) == 0, resumed.output
    resumed.wait_for(rf"resumed from step {s} ", 1)
    ref = cli_run(data_dir, straight, cache, f"--stop_after={s + 2}")
    assert ref.finish(START_S) == 0, ref.output

    a, b = losses(straight), losses(stopped)
    assert sorted(a) == sorted(b) == list(range(1, s + 3))
    assert [a[k] for k in sorted(a)] == [b[k] for k in sorted(b)]  # bitwise
    da, db = (checkpoint.array_digests(checkpoint.load_state(wd, s + 2)) for wd in (straight, stopped))
    assert any(k.startswith(".opt_state") for k in da) and any(k.startswith(".ema") for k in da)
    assert da == db


def distributed_run(process_id, port, workdir, data_dir, cache, stop_after=None):
    overrides = {"data.data_dir": data_dir, "train.num_steps": 200, "train.ckpt_every": 1000,
                 "train.log_every": 1}
    args = [os.path.join(ROOT, "tests", "distributed_train.py"), str(process_id), "2", str(port), workdir,
            json.dumps(overrides)] + ([str(stop_after)] if stop_after is not None else [])
    return Child(args, child_env(2, cache))


def test_sigterm_to_one_of_two_processes(data_dir, cache, tmp_path):
    workdir = str(tmp_path / "run")
    port = free_port()
    procs = [distributed_run(i, port, workdir, data_dir, cache) for i in range(2)]
    try:
        procs[0].wait_for(r"^step 3/200", START_S)
        t0 = time.monotonic()
        procs[1].signal(signal.SIGTERM)  # only one process is told
        codes = [p.finish(GRACE_S) for p in procs]
        print(f"SIGTERM to exit of both: {time.monotonic() - t0:.1f} s")
        assert codes == [0, 0], "\n---\n".join(p.output for p in procs)
        steps = [int(p.wait_for(r"preempted: saving step (\d+)", 1).group(1)) for p in procs]
        assert steps[0] == steps[1] >= 3
        assert checkpoint.manager(workdir, keep=2).latest_step() == steps[0]

        port = free_port()
        procs = [distributed_run(i, port, workdir, data_dir, cache, stop_after=1) for i in range(2)]
        codes = [p.finish(START_S) for p in procs]
        assert codes == [0, 0], "\n---\n".join(p.output for p in procs)
        procs[0].wait_for(rf"resumed from step {steps[0]} ", 1)
        for p in procs:
            p.wait_for(rf"final_step {steps[0] + 1}$", 1)
    finally:
        for p in procs:
            p.kill()
