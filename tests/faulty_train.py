"""A smoke-config training run with one injected fault, to test what survives it.

    python tests/faulty_train.py WORKDIR OVERRIDES_JSON FAULT STEP

FAULT is what happens right after the checkpoint save of STEP has started (the
async write still in flight): ``sigkill`` (the process dies at once, as on a
node failure), ``raise`` (an exception unwinds the run) or ``fill_disk`` (once
that save committed, random bytes fill the workdir's file system up to a few
KiB: the next save finds the disk full). Use ``fill_disk`` only on a small
scratch file system.
"""
import errno
import json
import os
import signal
import sys

from smoke_config import smoke_config
from vdm.train import checkpoint
from vdm.train.loop import train


class InjectedFault(RuntimeError):
    pass


def fill_disk(folder: str, leave_bytes: int = 16 << 10) -> None:
    """Fill the file system of ``folder`` with incompressible bytes, then free ``leave_bytes``."""
    path = os.path.join(folder, "filler")
    # Unbuffered: with a buffer, bytes left in it when the disk filled are flushed again on
    # close, and that second ENOSPC escapes the handler below.
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(os.urandom(1 << 16))
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    os.truncate(path, max(os.path.getsize(path) - leave_bytes, 0))


def main(workdir: str, overrides: dict, fault: str, fault_step: int) -> None:
    config = smoke_config(overrides.pop("data.data_dir"), **overrides)
    save = checkpoint.save

    def save_then_fail(mngr, step, *args, **kwargs):
        started = save(mngr, step, *args, **kwargs)
        if step == fault_step:
            print(f"fault {fault} after starting the save of step {step}", flush=True)
            if fault == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "fill_disk":
                checkpoint.finish(mngr)
                fill_disk(workdir)
                return started
            raise InjectedFault(f"injected after starting the save of step {step}")
        return started

    checkpoint.save = save_then_fail
    train(config, workdir)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
