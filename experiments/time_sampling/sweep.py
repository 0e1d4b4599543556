"""Where in noise the benchmark trains (configs/shapes_t2v.py: 32x32, 8 frames, 8x8 patches,
hidden 256, joint attention at batch 32, x0 prediction, 2500 steps). Training times are
logit-normal shifted by 3 toward high noise, where motion is decided: 14% of draws fall below
t = 0.5, yet the restoration probe loses squares' corners between t = 0.3 and 0.7. A fraction
of times drawn U(0, 1) instead covers mid and low noise and keeps most of the high-noise
emphasis. Scored on 256 test prompts."""
from configs.shapes_t2v import ADAMW, CLUSTER_SCALE, SHAPE_METRICS
from vdm.sweep import Plot, Sweep

# 0.5 is not run: at 0.25 the t < 0.2 draws already carry 75% of the loss weight (README).
POINTS = [{"diffusion.time_uniform_mix": m} for m in (0.0, 0.25)]
PLOTS = [Plot(x="diffusion.time_uniform_mix",
              y=["shape_adherence", "shape_recall/square", "identity_consistency",
                 "direction_adherence", "i2v/identity_consistency"])]

# The same expected loss, drawn differently: t in proportion to density x weight, every
# example weighted by E[weight] (vdm/diffusion/importance.py). Draws in t in [0.2, 0.5] go from
# 13% to 33% of the batch, and no example carries more weight than another.
IMPORTANCE_POINTS = [{"diffusion.time_importance": v} for v in (False, True)]
IMPORTANCE_PLOTS = [Plot(x="diffusion.time_importance", kind="bar",
                         y=["shape_adherence", "shape_recall/square", "identity_consistency",
                            "direction_adherence", "i2v/identity_consistency"])]

SWEEPS = [Sweep(name="uniform_mix", base="configs/shapes_t2v.py", points=POINTS,
                fixed={"eval.num_samples": 256, **ADAMW}, metrics=SHAPE_METRICS, plots=PLOTS),
          Sweep(name="importance", base="configs/shapes_t2v.py", points=IMPORTANCE_POINTS,
                fixed={"eval.num_samples": 256, **ADAMW}, metrics=SHAPE_METRICS, plots=IMPORTANCE_PLOTS)]

# Cluster scale: the same mixtures over 640k clips (batch 64, 10000 steps).
CLUSTER = [s.with_fixed(CLUSTER_SCALE) for s in SWEEPS]
