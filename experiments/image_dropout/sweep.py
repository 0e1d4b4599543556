"""How much of the batch trains text alone (configs/shapes_t2v.py: 32x32, 8 frames, 8x8
patches, hidden 256, joint attention at batch 32, x0 prediction, 2500 steps). The benchmark
co-trains with the clean first frame given and drops it in 10% of the batch, so the task it
is scored on (a clip from text alone) is 10% of what it trains. Does a larger share of
text-only examples teach shape and identity from text sooner, and is direction from text,
learned where the first frame is given, kept? Scored on 256 test prompts."""
from configs.shapes_t2v import ADAMW, CLUSTER_SCALE, SHAPE_METRICS
from vdm.sweep import Plot, Sweep

POINTS = [{"conditions.image.dropout": p} for p in (0.1, 0.5)]
PLOTS = [Plot(x="conditions.image.dropout",
              y=["shape_adherence", "shape_recall/square", "identity_consistency",
                 "direction_adherence", "i2v/identity_consistency"])]

SWEEPS = [Sweep(name="text_only_share", base="configs/shapes_t2v.py", points=POINTS,
                fixed={"eval.num_samples": 256, **ADAMW}, metrics=SHAPE_METRICS, plots=PLOTS)]

# Cluster scale: the same shares over 640k clips (batch 64, 10000 steps).
CLUSTER = [s.with_fixed(CLUSTER_SCALE) for s in SWEEPS]
