"""The output head: does a 3x3 conv after unpatchify (model.out_conv = F features per pixel)
give sharper object outlines than the plain linear unpatchify, where the pixels on either side
of a patch border are drawn by different tokens? The width sweep's quickstart setting at
hidden 128 (text-to-video co-trained with the clean first frame, 2000 steps)."""
from vdm.sweep import Plot, Sweep

METRICS = ["shape_adherence", "shape_recall/square", "shape_recall/circle", "shape_recall/triangle",
           "identity_consistency", "direction_adherence", "i2v/anchor_kept", "i2v/identity_consistency",
           "final_loss", "train_gflop_per_step", "train_step_s"]

SWEEPS = [Sweep(name="output_head", base="configs/quickstart.py",
                points=[{"model.out_conv": f} for f in (0, 16)],
                fixed={"conditions.image.enabled": True, "conditions.image.dropout": 0.1,
                       "conditions.image.clean": True, "train.num_steps": 2000, "train.ckpt_every": 500,
                       "train.log_every": 100, "eval.tasks": "t2v,i2v"},
                metrics=METRICS,
                plots=[Plot(x="model.out_conv", kind="bar",
                            y=["shape_adherence", "shape_recall/square", "identity_consistency",
                               "i2v/anchor_kept", "i2v/identity_consistency", "final_loss"])])]

# Cluster scale: the benchmark data at the width sweep's cluster setting.
CLUSTER = [Sweep(name="output_head", base="configs/shapes_t2v.py",
                 points=[{"model.out_conv": f} for f in (0, 16)],
                 fixed={"model.patch_size": (1, 4, 4), "model.hidden": 512, "model.num_heads": 8,
                        "conditions.image.clean": True, "train.num_steps": 20000, "train.batch_size": 64,
                        "eval.num_samples": 256, "eval.tasks": "t2v,i2v"},
                 metrics=METRICS, plots=[])]
