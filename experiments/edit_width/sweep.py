"""The widest quickstart-scale recipe on editing: does what made text-to-video and the clean
anchor keep their shapes (hidden 256, 4000 steps; experiments/width) carry to edits? The
editing config (source clip by concat, instruction as text, source guidance 2) at the same
width and length, scored on 64 test pairs: trajectory error against the source, and the
requested edit applied, by kind (recolour, reshape, background).
"""
from vdm.sweep import Sweep

METRICS = ["edit/trajectory_error", "edit/edit_applied", "edit/edit_applied/color",
           "edit/edit_applied/shape", "edit/edit_applied/background", "edit/identity_consistency",
           "edit/direction_adherence", "final_loss", "train_gflop_per_step", "train_step_s"]

SWEEPS = [Sweep(name="edit", base="configs/shapes_edit.py",
                points=[{"train.num_steps": 4000}],
                fixed={"model.hidden": 256, "model.num_heads": 8, "train.ckpt_every": 500,
                       "train.keep_checkpoints": 8, "train.log_every": 100},
                metrics=METRICS)]

# Cluster scale: edit pairs at 32x32 x 16 frames, the model widened and trained longer.
CLUSTER = [Sweep(name="edit", base="configs/shapes_edit.py",
                 points=[{"model.hidden": h, "model.num_heads": h // 64} for h in (256, 512, 1024)],
                 fixed={"data.config": "edit_32", "data.num_frames": 16, "train.num_steps": 20000,
                        "train.batch_size": 64, "train.ckpt_every": 2000, "eval.num_samples": 256},
                 metrics=METRICS)]
