"""What stops a model from reading the direction words? At the quickstart scale (16x16, 8 frames,
joint attention, batch 32) co-training with the clean first frame teaches direction from text by
1000 steps; at the benchmark scale (32x32, 16 frames, sequential attention, batch 8) the words are
not read through 6000 steps (experiments/benchmark_scale). Here the quickstart-scale recipe with
one difference at a time: the layout (sequential, STDiT-style; interleaved, Latte-style) and the
batch (8, for 4000 steps; and at a lower learning rate), over the same 32k clips; and the tokens
a frame (64, as the benchmark clips have). Scored from text (t2v) and given the first frame
(i2v, whose direction_chance is what the start alone gives).
"""
from vdm.sweep import Plot, Sweep

METRICS = ["direction_adherence", "i2v/direction_adherence", "i2v/direction_chance", "shape_adherence",
           "identity_consistency", "i2v/anchor_kept", "final_loss", "train_step_s"]

RECIPE = {"conditions.image.enabled": True, "conditions.image.clean": True, "conditions.image.dropout": 0.1,
          "eval.tasks": "t2v,i2v", "train.ckpt_every": 500, "train.log_every": 100}

SWEEPS = [
    Sweep(name="layout", base="configs/quickstart.py",
          points=[{"model.layout": v} for v in ("joint", "sequential", "interleaved")],
          fixed={**RECIPE, "train.num_steps": 1000},
          metrics=METRICS,
          plots=[Plot(x="model.layout", kind="bar",
                      y=["direction_adherence", "i2v/direction_adherence", "shape_adherence", "final_loss"])]),
    # The same clips as layout/joint in 4x the steps of a quarter of the batch.
    Sweep(name="batch", base="configs/quickstart.py",
          points=[{"train.batch_size": 8, "train.num_steps": 4000}],
          fixed=RECIPE, metrics=METRICS),
    # Is it the gradient noise of the small batch? Batch 8 with the learning rate scaled down by
    # the square root (5e-4) and linearly (2.5e-4) of the batch ratio.
    Sweep(name="batch8_lr", base="configs/quickstart.py",
          points=[{"optim.lr": lr} for lr in (5e-4, 2.5e-4)],
          fixed={**RECIPE, "train.batch_size": 8, "train.num_steps": 4000},
          metrics=METRICS),
    # The quickstart clips in the benchmark pilot's token count: patches of 2x2 px give 64 tokens
    # a frame, 512 a clip (experiments/benchmark_joint reads no direction on the 32x32 clips at
    # 512 tokens). Tells whether the tokens or the clips keep the words unread there.
    Sweep(name="tokens", base="configs/quickstart.py",
          points=[{"model.patch_size": (1, 2, 2)}],
          fixed={**RECIPE, "train.num_steps": 1000, "train.ckpt_every": 250, "train.keep_checkpoints": 10},
          metrics=METRICS),
    # The benchmark recipe's width (hidden 256 in 8 heads of 32, as head dim stays) on the
    # quickstart clips. On the 32x32 clips in 8x8 patches (4x4 tokens a frame, as here) hidden
    # 256 read no direction words by step 500 (experiments/benchmark_joint, patch8_wide): does
    # the width slow the words down?
    Sweep(name="width", base="configs/quickstart.py",
          points=[{"model.hidden": 256, "model.num_heads": 8}],
          fixed={**RECIPE, "train.num_steps": 1000, "train.ckpt_every": 250, "train.keep_checkpoints": 10},
          metrics=METRICS),
]

# Cluster scale: the same questions on the benchmark clips (configs/shapes_t2v.py: 32x32, 8 of
# the 16 frames, 8x8 patches, the clean first frame co-trained), over the same 640k clips per run.
_CLUSTER_FIXED = {"eval.tasks": "t2v,i2v", "eval.num_samples": 256, "train.ckpt_every": 2000}
CLUSTER = [
    Sweep(name="layout", base="configs/shapes_t2v.py",
          points=[{"model.layout": v} for v in ("joint", "sequential", "interleaved")],
          fixed={**_CLUSTER_FIXED, "train.batch_size": 64, "train.num_steps": 10000},
          metrics=METRICS,
          plots=[Plot(x="model.layout", kind="bar",
                      y=["direction_adherence", "i2v/direction_adherence", "shape_adherence", "final_loss"])]),
    Sweep(name="batch", base="configs/shapes_t2v.py",
          points=[{"train.batch_size": b, "train.num_steps": 640_000 // b} for b in (16, 64, 256)],
          fixed={**_CLUSTER_FIXED, "model.layout": "joint"},
          metrics=METRICS,
          plots=[Plot(x="train.batch_size", logx=True,
                      y=["direction_adherence", "i2v/direction_adherence", "shape_adherence", "final_loss"])]),
]
