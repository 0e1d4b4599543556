"""Measure what a config costs, without training it: FLOPs (XLA cost analysis), memory (XLA
memory analysis of the train step) and wall time (medians). Writes WORKDIR/measure.json.

    python tools/measure.py --config configs/quickstart.py --workdir runs/cost --config.data.num_frames=16

--what picks the parts: train (one train step), sample (a full sampling run), or both.
Used by the compute_cost and attention_layout sweeps; see vdm/compute_cost.py.
"""
import _bootstrap  # noqa: F401

import json
import os

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where measure.json goes.")
flags.DEFINE_list("what", ["train", "sample"], "Parts to measure: train, sample.")
flags.DEFINE_integer("train_steps", 3, "Timed train steps.")
flags.DEFINE_integer("train_warmup", 1, "Untimed train steps after compilation.")
flags.DEFINE_integer("sample_num", 4, "Clips per timed sampling run.")
flags.DEFINE_integer("repeats", 3, "Timed sampling runs.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    bad = set(FLAGS.what) - {"train", "sample"}
    if bad:
        raise app.UsageError(f"--what: unknown parts {sorted(bad)}; use train and/or sample")
    from vdm import compute_cost

    result = {}
    if "train" in FLAGS.what:
        result.update(compute_cost.train_cost(FLAGS.config, steps=FLAGS.train_steps,
                                                  warmup=FLAGS.train_warmup))
    if "sample" in FLAGS.what:
        result.update(compute_cost.sampling_cost(FLAGS.config, num=FLAGS.sample_num, repeats=FLAGS.repeats))
    os.makedirs(FLAGS.workdir, exist_ok=True)
    path = os.path.join(FLAGS.workdir, "measure.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)  # present only when complete
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
