"""What the network predicts at the benchmark recipe (configs/shapes_t2v.py: 32x32, 8 frames,
8x8 patches, hidden 256, joint attention at batch 32, 2500 steps): the velocity (flow target,
plain regression) or the clean clip regressed through the velocity it implies (x0 prediction,
'velocity' weighting, as in JiT). An 8x8x3 patch is 192 numbers; a velocity target holds all of
its noise."""
from configs.shapes_t2v import ADAMW, FLOW_TARGET, GUIDED_EVERYWHERE
from vdm.sweep import Plot, Sweep

METRICS = ["shape_adherence", "shape_recall/square", "shape_recall/circle", "shape_recall/triangle",
           "identity_consistency", "identity_lost/shape", "direction_adherence", "color_adherence",
           "speed_error", "background_flicker", "i2v/shape_adherence", "i2v/anchor_kept",
           "i2v/identity_consistency", "final_loss"]

TARGETS = [FLOW_TARGET, {"diffusion.prediction": "x0", "diffusion.weighting": "velocity"}]

# Both runs were scored with guidance at every noise level (the benchmark samples with an
# interval now: experiments/guidance_interval).
SWEEPS = [Sweep(name="target", base="configs/shapes_t2v.py", points=TARGETS, fixed={**GUIDED_EVERYWHERE, **ADAMW},
                metrics=METRICS,
                plots=[Plot(x="diffusion.prediction", kind="bar",
                            y=["shape_adherence", "shape_recall/square", "identity_consistency",
                               "i2v/anchor_kept", "final_loss"])])]

# Cluster scale: the same two targets over 640k clips (batch 64, 10000 steps), scored on 256.
CLUSTER = [Sweep(name="target", base="configs/shapes_t2v.py", points=TARGETS,
                 fixed={"train.batch_size": 64, "train.num_steps": 10000, "train.ckpt_every": 2000,
                        "eval.num_samples": 256},
                 metrics=METRICS, plots=[])]
