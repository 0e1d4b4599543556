"""Model FLOP utilisation: achieved matmul FLOP/s over the hardware's peak.

The peak of a run is, in order: ``train.peak_flops`` when set (FLOP/s of the
whole mesh); else the datasheet peak of the device kind times the number of
devices (dense, no sparsity; bf16 tensor-core rate, or TF32 for fp32 compute
on NVIDIA, where XLA uses TF32 by default; TPUs run fp32 matmuls as bf16
passes at default precision); else, on CPU, a jax fp32 matmul measured once
per process (the best of a few runs, so a busy machine lowers it less). CPU
devices forced with ``--xla_force_host_platform_device_count`` share the same
cores, so a CPU mesh gets the measured peak once, not once per device.

A measurement on a busy machine is low, and a run that measured it so would log
MFU above 100% once the machine frees up. So the best CPU peak measured so far
is kept per machine (CPU model, core count, jax version) in
``$VDM_CACHE_DIR/matmul_peak.json`` (default ``~/.cache/vdm``), and a run uses
the larger of that and its own measurement.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import tempfile
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from vdm import conditioning, flops

# (substring of jax.Device.device_kind, lowercase) -> (bf16, fp32) dense FLOP/s per device.
# More specific names first: "v5 lite" before "v5".
DEVICE_PEAK_FLOPS: tuple[tuple[str, tuple[float, float]], ...] = (
    ("h200", (989e12, 494e12)),
    ("h100", (989e12, 494e12)),
    ("a100", (312e12, 156e12)),
    ("l4", (121e12, 60e12)),
    ("v6 lite", (918e12, 918e12)),
    ("v6e", (918e12, 918e12)),
    ("v5 lite", (197e12, 197e12)),
    ("v5e", (197e12, 197e12)),
    ("v5p", (459e12, 459e12)),
    ("v5", (459e12, 459e12)),
    ("v4", (275e12, 275e12)),
    ("v3", (123e12, 123e12)),
)


def device_peak_flops(device_kind: str, dtype) -> float | None:
    """Datasheet peak of one device for matmuls in ``dtype``; None when unknown."""
    kind = device_kind.lower()
    half = jnp.dtype(dtype).itemsize <= 2
    for name, (bf16, fp32) in DEVICE_PEAK_FLOPS:
        if name in kind:
            return bf16 if half else fp32
    return None


@functools.lru_cache(maxsize=None)
def measured_matmul_peak(size: int = 2048, repeats: int = 5, dtype: str = "float32") -> float:
    """FLOP/s of a jitted square matmul on the default device: the best of ``repeats``."""
    a = jax.random.normal(jax.random.key(0), (size, size), dtype)
    b = jax.random.normal(jax.random.key(1), (size, size), dtype)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best


def _machine_key(size: int, dtype: str) -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} | {os.cpu_count()} cores | jax {jax.__version__} | {dtype} {size}^3"


def best_cpu_matmul_peak(size: int = 2048, dtype: str = "float32") -> float:
    """The larger of this process's measured matmul peak and the best one kept for this
    machine, which it updates. Cache problems (unwritable, corrupt) fall back to the
    measurement alone."""
    measured = measured_matmul_peak(size, dtype=dtype)
    path = os.path.join(os.environ.get("VDM_CACHE_DIR") or os.path.expanduser("~/.cache/vdm"),
                        "matmul_peak.json")
    key = _machine_key(size, dtype)
    try:
        with open(path) as f:
            kept = json.load(f)
        if not isinstance(kept, dict):
            kept = {}
    except (OSError, ValueError):
        kept = {}
    old = kept.get(key)
    old = float(old) if isinstance(old, (int, float)) else 0.0
    best = max(measured, old)
    if best > old:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), delete=False) as f:
                json.dump({**kept, key: best}, f, indent=1)
            os.replace(f.name, path)  # atomic: concurrent runs never read half a file
        except OSError:
            pass
    return best


def mesh_peak_flops(config: ml_collections.ConfigDict, mesh) -> tuple[float, str]:
    """(peak FLOP/s of the run's devices, where the number comes from)."""
    if config.train.peak_flops:
        return float(config.train.peak_flops), "config"
    devices = mesh.devices.flatten()
    kind = devices[0].device_kind
    known = device_peak_flops(kind, config.model.dtype)
    if known is not None:
        return known * len(devices), f"datasheet {kind} x {len(devices)}"
    if devices[0].platform == "cpu":
        return best_cpu_matmul_peak(), "measured cpu fp32 matmul (best kept for this machine)"
    raise ValueError(f"no known peak FLOP/s for device kind {kind!r}; set train.peak_flops")


def abstract_denoiser(config: ml_collections.ConfigDict):
    """The model the config builds, abstract (no arrays allocated)."""
    from flax import nnx

    from vdm.train.state import build_model

    return nnx.eval_shape(lambda: build_model(config, nnx.Rngs(0)))


def text_len(config: ml_collections.ConfigDict) -> int:
    return config.data.text_max_len if "text" in conditioning.enabled(config.conditions) else 0


def train_step_flops(config: ml_collections.ConfigDict, model=None) -> float:
    """Analytic FLOPs of one training step (the global batch) of the config's model."""
    from vdm.train.state import video_shape

    model = model if model is not None else abstract_denoiser(config)
    return flops.train_step_flops(model, config.train.batch_size, video_shape(config)[:3], text_len(config))


class ThroughputMeter:
    """Steps/s -> tokens/s, model FLOP/s and MFU for one config on one mesh."""

    def __init__(self, config: ml_collections.ConfigDict, mesh, model=None):
        from vdm.train.state import video_shape

        model = model if model is not None else abstract_denoiser(config)
        self.step_flops = train_step_flops(config, model)
        self.step_tokens = config.train.batch_size * flops.tokens_per_clip(model.dit, video_shape(config)[:3])
        self._config, self._mesh = config, mesh
        self._peak: tuple[float, str] | None = None

    @property
    def peak(self) -> tuple[float, str]:
        if self._peak is None:  # measured lazily: a run that never logs never measures
            self._peak = mesh_peak_flops(self._config, self._mesh)
        return self._peak

    def metrics(self, steps_per_s: float) -> dict[str, Any]:
        achieved = steps_per_s * self.step_flops
        return {"tokens_per_s": steps_per_s * self.step_tokens, "model_flops_per_s": achieved,
                "mfu": achieved / self.peak[0]}
