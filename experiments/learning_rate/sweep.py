"""Whether the benchmark (configs/shapes_t2v.py: 32x32, 8 frames, 8x8 patches, hidden 256,
joint attention at batch 32, x0 prediction, 2500 steps) is held back by its step size. Shape
and identity from text keep rising with steps (0.80 / 0.49 at 2500, 0.93 / 0.67 at 8000);
if the optimizer is what limits them, a larger peak learning rate (same warm-up, same cosine
to 0.1x) should buy some of that at equal steps. Scored on 256 test prompts.

`text_lr`: at the 2e-3 peak the model stopped reading its prompt. The byte-level text encoder
is trained jointly from scratch at the DiT's rate; with its own rate held at 1e-3
(`optim.text_lr_scale=0.5`), does the DiT take the larger step without losing the prompt?
Half: given the first frame it reads its direction words again (i2v 0.51 -> 0.99), from text
alone it loses more colour (0.76 -> 0.39); see README.md."""
from configs.shapes_t2v import ADAMW, CLUSTER_SCALE, SHAPE_METRICS
from vdm.sweep import Plot, Sweep

POINTS = [{"optim.lr": lr} for lr in (1e-3, 2e-3)]
PLOTS = [Plot(x="optim.lr", logx=True,
              y=["shape_adherence", "shape_recall/square", "identity_consistency",
                 "direction_adherence", "i2v/identity_consistency", "final_loss"])]

TEXT_POINTS = [{"optim.text_lr_scale": s} for s in (1.0, 0.5)]
TEXT_PLOTS = [Plot(x="optim.text_lr_scale",
                   y=["color_adherence", "shape_adherence", "identity_consistency",
                      "direction_adherence", "i2v/direction_adherence", "final_loss"])]

SWEEPS = [Sweep(name="peak_lr", base="configs/shapes_t2v.py", points=POINTS,
                fixed={"eval.num_samples": 256, **ADAMW}, metrics=SHAPE_METRICS, plots=PLOTS),
          Sweep(name="text_lr", base="configs/shapes_t2v.py", points=TEXT_POINTS,
                fixed={"eval.num_samples": 256, "optim.lr": 2e-3, **ADAMW}, metrics=SHAPE_METRICS, plots=TEXT_PLOTS)]

# Cluster scale: the same peaks over 640k clips (batch 64, 10000 steps).
CLUSTER = [s.with_fixed(CLUSTER_SCALE) for s in SWEEPS]
