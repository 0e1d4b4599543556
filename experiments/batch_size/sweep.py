"""Whether the benchmark (configs/shapes_t2v.py: 32x32, 8 frames, 8x8 patches, hidden 256,
joint attention, x0 prediction, batch 32 for 2500 steps) is short of optimizer steps or of
clips. Shape and identity from text keep rising with steps at batch 32 (0.80 / 0.49 at 2500,
0.93 / 0.67 at 8000). Here the same 80k clips and about the same compute are cut into twice
as many steps of half the batch. At the quickstart scale batch 8 bought shape over the same
clips but lost the direction words (experiments/direction_blockers). Scored on 256 test
prompts."""
import dataclasses

from configs.shapes_t2v import SHAPE_METRICS
from vdm.sweep import Plot, Sweep

POINTS = [{"train.batch_size": 32, "train.num_steps": 2500},
          {"train.batch_size": 16, "train.num_steps": 5000}]
PLOTS = [Plot(x="train.batch_size",
              y=["shape_adherence", "shape_recall/square", "identity_consistency",
                 "direction_adherence", "i2v/identity_consistency", "final_loss"])]

SWEEPS = [Sweep(name="clips_fixed", base="configs/shapes_t2v.py", points=POINTS,
                fixed={"eval.num_samples": 256}, metrics=SHAPE_METRICS, plots=PLOTS)]

# Cluster scale: the same 640k clips as batch 64 x 10000 steps or batch 32 x 20000.
CLUSTER = [dataclasses.replace(
    s.with_fixed({"train.ckpt_every": 2000}),
    points=[{"train.batch_size": 64, "train.num_steps": 10000},
            {"train.batch_size": 32, "train.num_steps": 20000}]) for s in SWEEPS]
