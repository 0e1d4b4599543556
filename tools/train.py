"""Train a model: ``python tools/train.py --config configs/quickstart.py --workdir runs/qs``.

Override any field with ``--config.a.b=v`` (a typo is an error naming the key).
A second run with the same workdir and config resumes from the latest
checkpoint. At the end the run samples clips and scores them (grounded
metrics), written under ``workdir/eval``.

Several processes (hosts): run the same command on each, with ``--coordinator
host0:PORT --num_processes N --process_id i``, or under SLURM / Open MPI / a TPU
slice without them (see vdm/distributed.py and README "Scaling up").
"""
import _bootstrap  # noqa: F401  (repository root on sys.path)

import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.DEFINE_bool("resume", False, "Continue a workdir's run even though its config differs.")
flags.DEFINE_bool("overwrite", False, "Delete a workdir's run of another config and start anew.")
flags.DEFINE_string("coordinator", None, "host:port of process 0, for a multi-process run.")
flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from vdm import distributed
    from vdm.train.loop import WorkdirConflict, train

    try:
        distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
        final = train(FLAGS.config, FLAGS.workdir, resume=FLAGS.resume, overwrite=FLAGS.overwrite)
    except (WorkdirConflict, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    evals = {k: v for k, v in final.items() if k.startswith("eval/")}
    if evals:
        print("grounded metrics: " + ", ".join(f"{k[5:]} {v:.3f}" for k, v in evals.items()))
    print(f"done: {FLAGS.workdir}")


if __name__ == "__main__":
    app.run(main)
