"""Drift of identity and motion vs the number of frames generated: the quickstart model
trained and sampled at T = 8, 16, 32 frames of the same scenes (long_16: 16x16, bouncing
objects), scored per frame index.
"""
from vdm.sweep import Plot, Sweep, product

METRICS = ["color_adherence", "shape_adherence", "identity_consistency", "direction_adherence",
           "speed_error", "drift/color_presence_slope", "drift/shape_adherence_slope",
           "drift/area_deviation_slope", "drift/speed_error_slope", "frechet", "train_step_s"]
PLOTS = [
    Plot(x="frame", y=["per_frame/task/color_presence", "per_frame/task/shape_adherence",
                       "per_frame/task/area_deviation", "per_frame/task/speed_error"],
         series="data.num_frames"),
    Plot(x="data.num_frames", y=["identity_consistency", "direction_adherence", "speed_error"]),
]

SWEEPS = [Sweep(name="clip_length", base="configs/quickstart.py",
                points=product({"data.num_frames": [8, 16, 32]}),
                fixed={"data.config": "long_16", "train.batch_size": 16, "train.num_steps": 700,
                       "train.ckpt_every": 350, "train.log_every": 25, "eval.num_samples": 32,
                       "eval.batch_size": 32, "eval.tasks": "t2v", "sample.steps": 20},
                metrics=METRICS, plots=PLOTS)]

CLUSTER = [Sweep(name="clip_length", base="configs/shapes_t2v_cluster.py",
                 points=product({"data.num_frames": [8, 16, 32]}),
                 fixed={"data.config": "hard_64", "eval.num_samples": 256, "eval.tasks": "t2v"},
                 metrics=METRICS, plots=PLOTS)]
