"""Diffusion math in pure jnp: noise processes, losses, samplers, guidance.

No model, no config objects: everything takes arrays and a model function
`model_fn(x_t [B, ...], t [B]) -> prediction`, and is tested against closed forms.
"""

from vdm.diffusion.guidance import cfg_combine, guidance_weights, multi_guidance
from vdm.diffusion.losses import (
    PREDICTIONS,
    WEIGHTINGS,
    diffusion_loss,
    draw_noise,
    loss_weight,
    target,
    to_x0_eps,
    weighted_times,
)
from vdm.diffusion.samplers import SAMPLERS, ddim, ddpm, euler, heun, sample
from vdm.diffusion.schedules import (
    PROCESSES,
    TIME_EPS,
    TIME_KINDS,
    Process,
    RectifiedFlow,
    VPCosine,
    as_process,
    get_process,
    sample_time,
    sampling_times,
    shift_for_tokens,
    shift_time,
)

__all__ = [
    "PREDICTIONS",
    "PROCESSES",
    "SAMPLERS",
    "TIME_EPS",
    "TIME_KINDS",
    "WEIGHTINGS",
    "Process",
    "RectifiedFlow",
    "VPCosine",
    "as_process",
    "cfg_combine",
    "ddim",
    "ddpm",
    "diffusion_loss",
    "draw_noise",
    "euler",
    "get_process",
    "guidance_weights",
    "heun",
    "loss_weight",
    "multi_guidance",
    "sample",
    "sample_time",
    "sampling_times",
    "shift_for_tokens",
    "shift_time",
    "target",
    "to_x0_eps",
    "weighted_times",
]
