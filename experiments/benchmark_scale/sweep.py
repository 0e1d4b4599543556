"""Does the quickstart-scale recipe carry to the benchmark clips? At 16x16 x 8 frames,
hidden 256 with the clean first frame co-trained (image dropped in 10% of the batch) learns
direction from text by 2000 steps and shape by 8000 (experiments/width). Here the same
recipe on `configs/shapes_t2v.py` (32x32 x 16 frames, 3 sizes, 2 speeds): frames as their own
tubelets (patch (1, 4, 4), 1024 tokens a clip) so that the clean first frame is clean, at the
length a 2-core CPU affords in about 1.5 h (2000 steps at batch 8, ~2.2 s/step), the
length at which the quickstart-scale model had learnt direction. Scored on text alone (t2v)
and given the first frame (i2v). The recipe was `configs/shapes_t2v.py`'s default until 8x8
patches with joint attention at batch 32 read the direction words (experiments/benchmark_joint);
RECIPE pins it so that the sweep reruns the same run.
"""
from configs.shapes_t2v import SEQUENTIAL_RECIPE
from vdm.sweep import Sweep

METRICS = ["shape_adherence", "identity_consistency", "direction_adherence", "speed_error",
           "max_step", "i2v/anchor_kept", "i2v/direction_adherence", "i2v/identity_consistency",
           "final_loss", "train_gflop_per_step", "train_step_s"]

RECIPE = {**SEQUENTIAL_RECIPE, "model.hidden": 256, "model.num_heads": 8,
          "conditions.image.clean": True, "train.ckpt_every": 500, "train.log_every": 50,
          "eval.tasks": "t2v,i2v"}

SWEEPS = [Sweep(name="recipe", base="configs/shapes_t2v.py",
                points=[{"train.num_steps": 2000}],
                fixed={**RECIPE, "train.batch_size": 8},
                metrics=METRICS)]

# Cluster scale: the same recipe at the batch and lengths the quickstart scale needed.
CLUSTER = [Sweep(name="recipe", base="configs/shapes_t2v.py",
                 points=[{"train.num_steps": n} for n in (5000, 10000, 20000)],
                 fixed={**RECIPE, "train.batch_size": 64, "train.ckpt_every": 2000,
                        "eval.num_samples": 256},
                 metrics=METRICS)]
