"""Share of the expected loss weight by noise level for each uniform mix of the sweep, from the
project's own time sampler and loss weighting (shapes_t2v: shift 3, x0 target, velocity weight).

    python experiments/time_sampling/weight_share.py
"""
import jax
import jax.numpy as jnp

from vdm.diffusion.losses import loss_weight
from vdm.diffusion.schedules import sample_time

for mix in (0.0, 0.25, 0.5):
    t = sample_time(jax.random.key(0), (2_000_000,), "logit_normal", shift=3.0, uniform_mix=mix)
    w = loss_weight("flow", "x0", t, "velocity")
    low, high = t < 0.2, t > 0.8
    print(f"mix {mix}: draws t<0.2 {low.mean():.1%}, t>0.8 {high.mean():.1%} | E[w] {w.mean():.1f} | "
          f"weight share t<0.2 {jnp.sum(w * low) / w.sum():.2f}, t>0.8 {jnp.sum(w * high) / w.sum():.3f}")
