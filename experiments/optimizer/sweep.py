"""Whether Muon gets more out of each of the benchmark's steps than AdamW
(configs/shapes_t2v.py: 32x32, 8 frames, 8x8 patches, hidden 256, joint attention, x0
prediction, batch 32 for 2500 steps). Shape and identity from text keep rising with steps
(0.80 / 0.49 at 2500, 0.93 / 0.67 at 8000), and neither a larger step size nor more, smaller
steps bought them (experiments/learning_rate, experiments/batch_size). Muon steps each hidden
matrix by its orthogonalised momentum (vdm/train/muon.py), at AdamW's update RMS, learning
rate, schedule and weight decay, so that the optimizer is the only change. Scored on 256 test
prompts."""
from configs.shapes_t2v import CLUSTER_SCALE, SHAPE_METRICS
from vdm.sweep import Plot, Sweep


def plots(key, bars):
    """Bars of the final metrics against ``key``, and the training loss per step, each point
    the mean of 250 steps. Not against wall time: the AdamW run shared the CPU for its first
    700 steps (the step costs are in README.md)."""
    return [Plot(x=key, kind="bar", y=bars),
            Plot(x="curve/step", y=["curve/loss"], series=key, smooth=5, logy=True)]


POINTS = [{"optim.optimizer": name} for name in ("adamw", "muon")]
PLOTS = plots("optim.optimizer", ["shape_adherence", "shape_recall/square", "identity_consistency",
                                  "direction_adherence", "i2v/identity_consistency", "final_loss"])

# Muon's step size: its update RMS per unit lr, 0.2 (AdamW's, the benchmark) against 0.4, on
# the hidden matrices only (the AdamW part keeps lr 1e-3). AdamW at twice the lr lost the text
# pathway (experiments/learning_rate); Muon's orthogonalised step is often run far larger.
RMS_POINTS = [{"optim.muon_rms": rms} for rms in (0.2, 0.4)]
RMS_PLOTS = plots("optim.muon_rms", ["color_adherence", "shape_adherence", "identity_consistency",
                                     "direction_adherence", "i2v/identity_consistency", "final_loss"])

SWEEPS = [Sweep(name="muon", base="configs/shapes_t2v.py", points=POINTS,
                fixed={"eval.num_samples": 256}, metrics=SHAPE_METRICS, plots=PLOTS),
          Sweep(name="muon_rms", base="configs/shapes_t2v.py", points=RMS_POINTS,
                fixed={"eval.num_samples": 256}, metrics=SHAPE_METRICS, plots=RMS_PLOTS)]

# Cluster scale: 640k clips (batch 64, 10000 steps).
CLUSTER = [s.with_fixed(CLUSTER_SCALE) for s in SWEEPS]
