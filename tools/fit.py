"""Pre-launch fit check: per-device memory and FLOPs of a config on a mesh, on this CPU.

    python tools/fit.py --config configs/shapes_t2v_cluster.py --mesh data=2,fsdp=32

Builds the train state and step abstractly for the mesh (nothing is allocated),
compiles the step on as many forced host CPU devices as the mesh has, and
prints per-device bytes of parameters, optimizer state, EMA, batch and the
compiler's temporaries (activations), plus FLOPs per step. Axes not named in
--mesh are 1; one axis may be -1 with --devices. Config overrides work as in
tools/train.py (``--config.train.batch_size=512``).
"""
import _bootstrap  # noqa: F401  (repository root on sys.path)

import json
import math
import os
import sys

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).", lock_config=True)
flags.DEFINE_string("mesh", None, "Mesh sizes, e.g. data=2,fsdp=4,sequence=1,tensor=2 (unnamed axes: 1).")
flags.DEFINE_integer("devices", None, "Device count (needed only when an axis is -1).")
flags.DEFINE_bool("json", False, "Also print the figures as one JSON line.")
flags.mark_flags_as_required(["config"])
FLAGS = flags.FLAGS

AXES = ("data", "fsdp", "sequence", "tensor")


def parse_mesh(text: str | None, config_mesh) -> dict[str, int]:
    if not text:
        return {a: int(config_mesh[a]) for a in AXES}
    sizes = {a: 1 for a in AXES}
    for item in text.split(","):
        name, eq, value = item.strip().partition("=")
        if name not in AXES or not eq:
            raise ValueError(f"--mesh item {item!r}: want NAME=SIZE with NAME in {AXES}")
        sizes[name] = int(value)
    return sizes


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        sizes = parse_mesh(FLAGS.mesh, FLAGS.config.mesh)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if -1 in sizes.values() and not FLAGS.devices:
        print("error: a mesh axis of -1 needs --devices", file=sys.stderr)
        return 2
    n = FLAGS.devices or math.prod(sizes.values())
    # Before JAX starts: this many host devices stand in for the accelerators.
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"
    os.environ["JAX_PLATFORMS"] = "cpu"
    # The program is compiled, never run: skip LLVM's optimisation of the CPU code (buffer
    # assignment, hence the memory figures, is decided before it).
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    from vdm import fit, sharding

    config = FLAGS.config
    try:
        mesh = sharding.make_mesh(sizes)
        report = fit.fit_report(config, mesh)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(fit.format_report(report, dict(mesh.shape)))
    if FLAGS.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
