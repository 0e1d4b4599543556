"""Benchmark a config; prints one JSON line.

    python tools/benchmark.py --config configs/quickstart.py [--steps 10]

Fields: params, compile_s, train_step_s (median of --steps after warm-up),
train_examples_per_s, sample_s / samples_per_s (median of --sample_repeats
full sampling runs of the config's sampler), peak memory.
"""
import _bootstrap  # noqa: F401

import json

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).", lock_config=True)
flags.DEFINE_integer("steps", 10, "Timed train steps (after warm-up).")
flags.DEFINE_integer("warmup", 2, "Untimed train steps after compilation.")
flags.DEFINE_integer("sample_repeats", 3, "Timed sampling runs.")
flags.DEFINE_integer("sample_num", 0, "Clips per sampling run (0: config.sample.num).")
flags.DEFINE_integer("sample_steps", 0, "Sampler steps (0: config.sample.steps).")
flags.mark_flags_as_required(["config"])
FLAGS = flags.FLAGS


def main(argv):
    from vdm.benchmark import benchmark

    result = benchmark(FLAGS.config, steps=FLAGS.steps, warmup=FLAGS.warmup,
                       sample_repeats=FLAGS.sample_repeats, sample_num=FLAGS.sample_num or None,
                       sample_steps=FLAGS.sample_steps or None)
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
