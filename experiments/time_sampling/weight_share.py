"""Share of the expected loss weight by noise level for each uniform mix of the sweep, and where
`time_importance` draws, from the project's own time samplers and loss weighting (shapes_t2v:
shift 3, x0 target, velocity weight).

    python experiments/time_sampling/weight_share.py
"""
import jax
import jax.numpy as jnp

from vdm.diffusion.losses import loss_weight, weighted_times
from vdm.diffusion.schedules import sample_time

BANDS = ((0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.0))


def bands(t, w):
    return " ".join(f"[{lo},{hi}) draws {jnp.mean((t >= lo) & (t < hi)):.1%} "
                    f"weight {jnp.sum(w * ((t >= lo) & (t < hi))) / w.sum():.3f} |" for lo, hi in BANDS)


for mix in (0.0, 0.25, 0.5):
    t = sample_time(jax.random.key(0), (2_000_000,), "logit_normal", shift=3.0, uniform_mix=mix)
    w = loss_weight("flow", "x0", t, "velocity")
    print(f"mix {mix}: E[w] {w.mean():.1f}, max w / E[w] {w.max() / w.mean():.0f} | {bands(t, w)}")

sampler = weighted_times("flow", "x0", "velocity", time_kind="logit_normal", time_shift=3.0)
t = sampler.sample(jax.random.key(1), (2_000_000,))
w = jnp.full_like(t, sampler.mean_weight)
print(f"time_importance: every draw weighs E[w] = {sampler.mean_weight:.2f} | {bands(t, w)}")
