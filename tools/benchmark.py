"""Benchmark a config (or two side by side); prints one JSON line.

    python tools/benchmark.py --config configs/bench_interleaved.py [--modes train,sample]
    python tools/benchmark.py --config configs/bench_interleaved.py:depth=4,scan \
        --compare configs/bench_interleaved.py:depth=24,scan --modes train

Any config field can be overridden (``--config.model.remat=full``,
``--config.mesh.data=2``). Fields per mode (medians of --steps after
warm-up; ``*_mfu`` against ``peak_flops_per_s``):
  train:   compile_s, train_step_s, train_step_mfu, tokens_per_s, compiled_peak_bytes
  forward: forward_compile_s, forward_s, forward_mfu
  sample:  sample_s (whole run of --sample_num clips), sample_s_per_clip, sample_mfu;
           with --python_loop, python_loop_s and python_loop_over_scan
  --profile: train_op_profile (vdm/op_profile.py: op time by class, top ops) and
           train_matmul_only_mfu_bound (the MFU if everything but the matmuls were free)
  --dot_floor: train_dot_floor (vdm/dot_floor.py: the step's dots, each timed alone) and
           train_dot_floor_mfu_bound (the MFU if the step took only that long), and
           train_dot_floor_best_order_mfu_bound (the same with each dot's faster operand order)
With --compare: {"a": ..., "b": ..., "b_over_a": ...}.
"""
import _bootstrap  # noqa: F401

import json

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).", lock_config=True)
config_flags.DEFINE_config_file("compare", None, "A second config, measured in the same run.",
                                lock_config=True)
flags.DEFINE_list("modes", ["train", "forward", "sample"], "Any of train, forward, sample.")
flags.DEFINE_integer("steps", 10, "Timed train / forward steps after warm-up (0: compile only).")
flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
flags.DEFINE_integer("sample_repeats", 3, "Timed sampling runs.")
flags.DEFINE_integer("sample_num", 0, "Clips per sampling run (0: config.sample.num).")
flags.DEFINE_integer("sample_steps", 0, "Sampler steps (0: config.sample.steps).")
flags.DEFINE_integer("frames", 0, "Clip length override (0: the config's data.num_frames).")
flags.DEFINE_bool("python_loop", False, "Also time Euler sampling driven step by step from Python.")
flags.DEFINE_bool("profile", False, "Also profile the train step: its op time by class (matmul, "
                  "reduction, ...), the costliest ops, and the MFU if only matmuls took time.")
flags.DEFINE_bool("dot_floor", False, "Also time each dot of the train step alone: the MFU the "
                  "step would reach if it took no longer than its matmuls run on their own.")
flags.mark_flags_as_required(["config"])
FLAGS = flags.FLAGS


def main(argv):
    from vdm.benchmark import benchmark, compare

    def run(config):
        return benchmark(config, modes=FLAGS.modes, steps=FLAGS.steps, warmup=FLAGS.warmup,
                         sample_repeats=FLAGS.sample_repeats, sample_num=FLAGS.sample_num or None,
                         sample_steps=FLAGS.sample_steps or None, frames=FLAGS.frames or None,
                         python_loop=FLAGS.python_loop, profile=FLAGS.profile,
                         dot_floor=FLAGS.dot_floor)

    result = run(FLAGS.config)
    if FLAGS.compare is not None:
        result = compare(result, run(FLAGS.compare))
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
