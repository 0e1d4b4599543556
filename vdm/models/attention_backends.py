"""Which attention kernel a config may ask for, and what runs on this platform.

``model.attention_impl`` names the attention kernel (``vdm.models.layers.attention``):

- ``''``     the default: ``'einsum'`` on CPU, where it is the fastest measured;
             elsewhere XLA's choice (on GPU it may pick cuDNN by itself)
- ``'xla'``  the plain XLA einsum-softmax-einsum, everywhere
- ``'cudnn'`` cuDNN flash attention: NVIDIA GPUs, bfloat16/float16 compute only
- ``'einsum'`` ``vdm/models/einsum_attention.py``: head-major einsums with a hand-written
             backward pass, everywhere (on the CPU benchmark model's spatial attention,
             forward + backward in a third of the time of ``jax.nn.dot_product_attention``)
- ``'splash'`` ``vdm/models/splash_attention.py``: the Pallas splash (flash) kernel, TPU only;
             calls whose lengths its blocks do not divide, or with per-example masks, use
             XLA's attention

A backend that cannot run here falls back to ``'xla'`` with a warning that
names the reason, so that one config trains on a GPU cluster and is debugged
on a laptop. ``strict=True`` turns the fallback into an error. An unknown
name is always an error.
"""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp

from vdm.models.layers import ATTENTION_IMPLEMENTATIONS

# '' (the platform's default) and the kernels layers.attention runs
BACKENDS = ("",) + tuple(i for i in ATTENTION_IMPLEMENTATIONS if i is not None)
_CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


class AttentionBackendUnavailable(RuntimeError):
    """The configured attention backend cannot run on this platform (strict mode)."""


def resolve_attention_impl(name: str, *, dtype, platform: str | None = None,
                           strict: bool = False) -> str | None:
    """The ``implementation`` argument for ``layers.attention`` (None = XLA's choice).

    name: the configured backend; dtype: the model's compute dtype; platform:
    'cpu' | 'gpu' | 'tpu' (default: JAX's default backend).
    """
    if name not in BACKENDS:
        raise ValueError(f"model.attention_impl {name!r} is not one of {BACKENDS}")
    platform = platform or jax.default_backend()
    if name == "":
        return "einsum" if platform == "cpu" else None
    if name not in ("cudnn", "splash"):
        return name
    reason = None
    if name == "splash" and platform != "tpu":
        reason = f"it is a TPU kernel and this platform is {platform!r}"
    elif name == "cudnn" and platform not in ("gpu", "cuda"):
        reason = f"it needs an NVIDIA GPU and this platform is {platform!r}"
    elif name == "cudnn" and jnp.dtype(dtype) not in _CUDNN_DTYPES:
        reason = f"it needs bfloat16 or float16 compute and model.dtype is {jnp.dtype(dtype).name}"
    if reason is None:
        return name
    message = f"attention_impl {name!r} cannot run: {reason}"
    if strict:
        raise AttentionBackendUnavailable(message)
    warnings.warn(message + "; using 'xla' attention", RuntimeWarning, stacklevel=2)
    return "xla"
