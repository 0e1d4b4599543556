"""Joint vs sequential vs interleaved space-time attention at matched parameters.

quality: train each layout on quickstart data and score it (grounded metrics, Fréchet).
scaling: train step time and memory vs frames T, measured without training (tools/measure.py).
"""
from vdm.sweep import Plot, Sweep, product

LAYOUTS = ["joint", "sequential", "interleaved"]
QUALITY_METRICS = ["color_adherence", "shape_adherence", "direction_adherence", "identity_consistency",
                   "frechet", "final_loss", "train_step_s"]
SCALING_METRICS = ["params", "train_step_s", "train_peak_bytes", "train_step_flops"]
QUALITY_PLOTS = [Plot(x="model.layout", y=["shape_adherence", "direction_adherence", "frechet",
                                           "final_loss", "train_step_s"], kind="bar")]
SCALING_PLOTS = [Plot(x="data.num_frames", y=["train_step_s", "train_peak_bytes", "train_step_flops"],
                      series="model.layout", logx=True, logy=True)]

SWEEPS = [
    Sweep(name="quality", base="configs/quickstart.py",
          points=product({"model.layout": LAYOUTS}),
          # The quickstart's own length (700 steps): where it learns colour and one object.
          fixed={"train.log_every": 25, "eval.num_samples": 64, "sample.steps": 20},
          metrics=QUALITY_METRICS, plots=QUALITY_PLOTS),
    # long_16 stores 64 frames at 16x16 (16 tokens a frame): T tokens x 16 per clip.
    Sweep(name="scaling", base="configs/quickstart.py", tool="measure",
          tool_args=["--what=train", "--train_steps=3", "--train_warmup=0"],
          # Frames-major, so that an interrupted sweep still compares every layout.
          points=[{"model.layout": layout, "data.num_frames": t} for t in [8, 16, 32, 64] for layout in LAYOUTS],
          fixed={"data.config": "long_16", "train.batch_size": 2},
          metrics=SCALING_METRICS, plots=SCALING_PLOTS),
]

# The cluster-scale variant: the 64x64x32 model (FSDP, bf16), trained to convergence.
CLUSTER = [
    Sweep(name="quality", base="configs/shapes_t2v_cluster.py",
          points=product({"model.layout": LAYOUTS}),
          fixed={"eval.num_samples": 256, "eval.shots": 4},
          metrics=QUALITY_METRICS, plots=QUALITY_PLOTS),
    Sweep(name="scaling", base="configs/shapes_t2v_cluster.py", tool="measure",
          tool_args=["--what=train", "--train_steps=10"],
          points=product({"model.layout": LAYOUTS, "data.num_frames": [8, 16, 32]}),
          metrics=SCALING_METRICS, plots=SCALING_PLOTS),
]
