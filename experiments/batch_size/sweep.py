"""Whether the benchmark (configs/shapes_t2v.py: 32x32, 8 frames, 8x8 patches, hidden 256,
joint attention, x0 prediction, batch 32 for 2500 steps) is short of optimizer steps or of
clips. Shape and identity from text keep rising with steps at batch 32 (0.80 / 0.49 at 2500,
0.93 / 0.67 at 8000). Here the same 80k clips and about the same compute are cut into twice
as many steps of half the batch. At the quickstart scale batch 8 bought shape over the same
clips but lost the direction words (experiments/direction_blockers). Scored on 256 test
prompts."""
import dataclasses

from configs.shapes_t2v import ADAMW, CLUSTER_SCALE, SHAPE_METRICS
from vdm.sweep import Plot, Sweep


def same_clips(batch: int, steps: int) -> list[dict]:
    """batch x steps, and the same clips as half the batch in twice the steps."""
    return [{"train.batch_size": batch, "train.num_steps": steps},
            {"train.batch_size": batch // 2, "train.num_steps": 2 * steps}]


POINTS = same_clips(32, 2500)  # the benchmark's batch and steps
PLOTS = [Plot(x="train.batch_size",
              y=["shape_adherence", "shape_recall/square", "identity_consistency",
                 "direction_adherence", "i2v/identity_consistency", "final_loss"])]

SWEEPS = [Sweep(name="clips_fixed", base="configs/shapes_t2v.py", points=POINTS,
                fixed={"eval.num_samples": 256, **ADAMW}, metrics=SHAPE_METRICS, plots=PLOTS)]

# Cluster scale: its 640k clips as batch 64 x 10000 steps or batch 32 x 20000.
CLUSTER = [dataclasses.replace(
    s.with_fixed({"train.ckpt_every": CLUSTER_SCALE["train.ckpt_every"]}),
    points=same_clips(CLUSTER_SCALE["train.batch_size"], CLUSTER_SCALE["train.num_steps"]))
    for s in SWEEPS]
