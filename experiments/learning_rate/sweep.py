"""Whether the benchmark (configs/shapes_t2v.py: 32x32, 8 frames, 8x8 patches, hidden 256,
joint attention at batch 32, x0 prediction, 2500 steps) is held back by its step size. Shape
and identity from text keep rising with steps (0.80 / 0.49 at 2500, 0.93 / 0.67 at 8000);
if the optimizer is what limits them, a larger peak learning rate (same warm-up, same cosine
to 0.1x) should buy some of that at equal steps. Scored on 256 test prompts."""
from vdm.sweep import Plot, Sweep

METRICS = ["shape_adherence", "shape_recall/square", "shape_recall/circle", "shape_recall/triangle",
           "identity_consistency", "identity_lost/shape", "direction_adherence", "color_adherence",
           "speed_error", "i2v/shape_adherence", "i2v/identity_consistency", "i2v/direction_adherence",
           "final_loss"]

POINTS = [{"optim.lr": lr} for lr in (1e-3, 2e-3)]
PLOTS = [Plot(x="optim.lr", logx=True,
              y=["shape_adherence", "shape_recall/square", "identity_consistency",
                 "direction_adherence", "i2v/identity_consistency", "final_loss"])]

SWEEPS = [Sweep(name="peak_lr", base="configs/shapes_t2v.py", points=POINTS,
                fixed={"eval.num_samples": 256}, metrics=METRICS, plots=PLOTS)]

# Cluster scale: the same peaks over 640k clips (batch 64, 10000 steps).
CLUSTER = [Sweep(name="peak_lr", base="configs/shapes_t2v.py", points=POINTS,
                 fixed={"train.batch_size": 64, "train.num_steps": 10000, "train.ckpt_every": 2000,
                        "eval.num_samples": 256},
                 metrics=METRICS, plots=PLOTS)]
