"""Train a model: ``python tools/train.py --config configs/quickstart.py --workdir runs/qs``.

Override any field with ``--config.a.b=v``. A second run with the same workdir
and config resumes from the latest checkpoint. At the end the run samples clips
and scores them (grounded metrics), written under ``workdir/eval``.

Exit codes: 0 done (or preempted by SIGTERM, with a checkpoint saved); 2 bad
input (config key, type or value; workdir of another config; checkpoint that
does not fit), reported before JAX starts where possible; 1 the run failed
(a checkpoint could not be written, non-finite training).

Several processes (hosts): run the same command on each, with ``--coordinator
host0:PORT --num_processes N --process_id i``, or under SLURM / Open MPI / a TPU
slice without them (see vdm/distributed.py and README "Scaling up").
"""
import _bootstrap  # noqa: F401  (repository root on sys.path)

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from vdm import config_check

config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.DEFINE_bool("resume", False, "Continue a workdir's run even though its config differs.")
flags.DEFINE_bool("overwrite", False, "Delete a workdir's run of another config and start anew.")
flags.DEFINE_integer("stop_after", None, "Leave after this many steps, with a checkpoint (as if preempted).")
flags.DEFINE_string("coordinator", None, "host:port of process 0, for a multi-process run.")
flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def bad_input(messages) -> None:
    for m in messages:
        print(f"error: {m}", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv):
    """absl's parsing, with every config mistake an exit code 2 naming the key (JAX not yet imported)."""
    try:
        rest = FLAGS(argv)
    except Exception as e:  # flags.Error for types; KeyError/AttributeError for unknown keys
        config = config_check.load_config_arg(argv)
        unknown = config_check.unknown_keys(config, config_check.override_keys(argv)) if config else []
        bad_input(unknown or [str(e)])
    bad_input_messages = config_check.impossible_values(FLAGS.config)
    if FLAGS.stop_after is not None and FLAGS.stop_after < 0:
        bad_input_messages.append(f"--stop_after={FLAGS.stop_after} must be >= 0")
    if bad_input_messages:
        bad_input(bad_input_messages)
    return rest


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from vdm import distributed
    from vdm.train.checkpoint import CheckpointError
    from vdm.train.loop import WorkdirConflict, train
    from vdm.train.manifest import ChecksumMismatch
    from vdm.train.numerics import NonFiniteTraining

    try:
        distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
        final = train(FLAGS.config, FLAGS.workdir, resume=FLAGS.resume, overwrite=FLAGS.overwrite,
                      stop_after=FLAGS.stop_after)
    except (WorkdirConflict, ValueError) as e:
        bad_input([e])
    except (CheckpointError, ChecksumMismatch, NonFiniteTraining) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    evals = {k: v for k, v in final.items() if k.startswith("eval/")}
    if evals:
        print("grounded metrics: " + ", ".join(f"{k[5:]} {v:.3f}" for k, v in evals.items()))
    print(f"done: {FLAGS.workdir}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
