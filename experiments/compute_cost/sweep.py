"""What a generated clip costs: FLOPs (XLA cost analysis of one guided model evaluation x
sampler steps) and measured sampling time per clip, one factor at a time from the quickstart
model: resolution, frames, sampler steps, and which conditions are on (and guided).
No training: the weights are freshly initialised (cost does not depend on them).
"""
from vdm.sweep import Plot, Sweep, product

METRICS = ["setup", "clip", "model_call_flops", "flops_per_clip", "sample_s_per_clip"]
Y = ["flops_per_clip", "sample_s_per_clip"]
MEASURE = ["--what=sample", "--sample_num=2", "--repeats=2"]


def cost(name, points, base="configs/quickstart.py", fixed=None, x=None, kind="line", logx=False):
    return Sweep(name=name, base=base, tool="measure", tool_args=MEASURE, points=points,
                 fixed=fixed or {}, metrics=METRICS,
                 plots=[Plot(x=x or next(iter(points[0])), y=Y, kind=kind, logx=logx, logy=True)])


SWEEPS = [
    # 16x16, 32x32, 64x64 clips of 8 frames (patch 4x4: 16, 64, 256 tokens a frame).
    cost("resolution", product({"data.config": ["quickstart", "t2v_32", "hard_64"]}), kind="bar"),
    cost("frames", product({"data.num_frames": [8, 16, 32]}), fixed={"data.config": "long_16"}, logx=True),
    cost("sampler_steps", product({"sample.steps": [10, 20, 40]}), logx=True),
    # Same model and data (edit_16); the conditions switched on, text guided or not.
    cost("conditions", [{"conditions.image.enabled": False, "conditions.text.guidance": 1.0},
                        {"conditions.image.enabled": False},
                        {},
                        {"config": "configs/shapes_edit.py"},
                        {"config": "configs/shapes_multitask.py"}],
         base="configs/shapes_i2v.py", x="setup", kind="bar"),
]

CLUSTER = [
    cost("resolution", product({"data.config": ["t2v_32", "hard_64"]}), base="configs/shapes_t2v_cluster.py",
         fixed={"data.num_frames": 16}, kind="bar"),
    cost("frames", product({"data.num_frames": [8, 16, 32]}), base="configs/shapes_t2v_cluster.py", logx=True),
    cost("sampler_steps", product({"sample.steps": [10, 25, 50, 100]}), base="configs/shapes_t2v_cluster.py",
         logx=True),
]
