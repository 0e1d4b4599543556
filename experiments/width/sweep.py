"""Model width at the quickstart scale: is shape (crisp edges, the prompted outline kept
through a clip) a matter of capacity? Text-to-video co-trained with the clean first frame
(image dropped in 10% of the batch), 2000 steps, scored on text alone (t2v) and given the
first frame (i2v: anchor kept). Heads keep a head dim of 32.
"""
from vdm.sweep import Plot, Sweep

METRICS = ["shape_adherence", "shape_recall/square", "shape_recall/circle", "shape_recall/triangle",
           "identity_consistency", "direction_adherence", "i2v/anchor_kept", "i2v/identity_consistency",
           "final_loss", "train_gflop_per_step", "train_step_s"]
POINTS = [{"model.hidden": h, "model.num_heads": h // 32} for h in (128, 192, 256)]
PLOTS = [Plot(x="model.hidden", y=["shape_adherence", "identity_consistency", "direction_adherence",
                                   "i2v/anchor_kept", "final_loss", "train_gflop_per_step"])]

SWEEPS = [Sweep(name="width", base="configs/quickstart.py", points=POINTS,
                fixed={"conditions.image.enabled": True, "conditions.image.dropout": 0.1,
                       "conditions.image.clean": True, "train.num_steps": 2000, "train.ckpt_every": 500,
                       "train.log_every": 100, "eval.tasks": "t2v,i2v"},
                metrics=METRICS, plots=PLOTS),
          # Is the widest model short of capacity or of steps? The same run trained twice and four
          # times as long (its learning rate schedule stretched to the new length; 8000 steps is
          # ~2 h on a 2-core CPU and resumes from its last checkpoint when rerun).
          Sweep(name="length", base="configs/quickstart.py",
                points=[{"train.num_steps": n} for n in (2000, 4000, 8000)],
                fixed={"model.hidden": 256, "model.num_heads": 8, "conditions.image.enabled": True,
                       "conditions.image.dropout": 0.1, "conditions.image.clean": True,
                       "train.ckpt_every": 500, "train.log_every": 100, "eval.tasks": "t2v,i2v"},
                metrics=METRICS,
                plots=[Plot(x="train.num_steps", y=["shape_adherence", "shape_recall/square",
                                                   "identity_consistency", "i2v/anchor_kept",
                                                   "i2v/identity_consistency", "final_loss"])])]

# Cluster scale: the benchmark clips as configs/shapes_t2v.py sees them (32x32, 8 of the 16
# frames, joint attention), in 4x4 patches (1024 tokens a clip) as these runs first asked,
# trained for longer.
CLUSTER = [Sweep(name="width", base="configs/shapes_t2v.py",
                 points=[{"model.hidden": h, "model.num_heads": h // 64} for h in (256, 512, 768, 1024)],
                 fixed={"model.patch_size": (1, 4, 4), "conditions.image.clean": True,
                        "train.num_steps": 20000, "train.batch_size": 64, "eval.num_samples": 256,
                        "eval.tasks": "t2v,i2v"},
                 metrics=METRICS, plots=PLOTS)]
