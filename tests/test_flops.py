"""Analytic FLOPs against what XLA is asked to compute, and the MFU arithmetic."""
import json

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from vdm import flops, mfu
from vdm.diffusion import sample
from vdm.models import VideoDiT
from vdm.models.denoiser import Denoiser
from vdm.models.text import TextEncoder

CLIP, B, TEXT = (4, 8, 8), 2, 6


def build(layout, remat="none", cross=True, frame_cond=True, scan_layers=False, out_conv=0):
    """Abstract (shapes only): counting and lowering need no weights."""
    def create():
        text = TextEncoder(width=16, depth=1, num_heads=2, max_len=TEXT, rngs=nnx.Rngs(1))
        dit = VideoDiT(input_size=CLIP, in_channels=3, out_channels=3, patch_size=(1, 2, 2),
                       hidden=32, depth=2, num_heads=2, layout=layout, cond_dim=16,
                       context_dim=16 if cross else None, frame_cond=bool(frame_cond),
                       frame_cond_form="bilinear" if frame_cond == "bilinear" else "mlp", temporal_window=1,
                       remat=remat, scan_layers=scan_layers, out_conv=out_conv, rngs=nnx.Rngs(0))
        return Denoiser(dit, text)

    return nnx.eval_shape(create)


def loss_fn(model):
    graphdef, params = nnx.split(model)
    x = jnp.zeros((B,) + CLIP + (3,))
    ids = jnp.ones((B, TEXT), jnp.int32)

    def loss(params):
        out = nnx.merge(graphdef, params)(x, jnp.ones(B), text_ids=ids, text_mask=ids > 0)
        return jnp.mean(jnp.square(out))

    return loss, params


@pytest.mark.parametrize("layout,remat,cross,frame_cond,out_conv", [
    ("sequential", "none", True, True, 0), ("interleaved", "full", True, True, 0),
    ("joint", "dots", True, True, 0), ("interleaved", "dots", False, False, 0),
    ("sequential", "none", False, "bilinear", 8)])
def test_analytic_flops_equal_the_matmuls_of_the_lowered_program(layout, remat, cross, frame_cond, out_conv):
    """Every dot_general jax emits for the forward and the gradient, counted from the
    program text: the analytic count must match it exactly (remat recompute included)."""
    model = build(layout, remat, cross, frame_cond, out_conv=out_conv)
    loss, params = loss_fn(model)
    forward = flops.lowered_matmul_flops(jax.jit(loss).lower(params).as_text())
    train = flops.lowered_matmul_flops(jax.jit(jax.grad(loss)).lower(params).as_text())
    assert forward > 0
    assert flops.forward_flops(model, B, CLIP, TEXT) == pytest.approx(forward, rel=1e-9)
    assert flops.train_step_flops(model, B, CLIP, TEXT) == pytest.approx(train, rel=1e-9)


def test_analytic_flops_against_xla_cost_analysis():
    """XLA's cost analysis of the compiled gradient also counts elementwise work
    (LayerNorm, GELU, softmax, RoPE, adds), which the matmul count leaves out on
    purpose; at this tiny width (32) that is ~17% of its total, shrinking as width grows."""
    model = build("joint")
    loss, params = loss_fn(model)
    xla = jax.jit(jax.grad(loss)).lower(params).compile().cost_analysis()["flops"]
    ratio = flops.train_step_flops(model, B, CLIP, TEXT) / xla
    assert 0.7 < ratio <= 1.0, ratio


def test_sampler_model_calls_are_the_calls_made():
    calls = []

    def model_fn(x, t):
        calls.append(1)
        return jnp.zeros_like(x)

    noise = jnp.ones((1, 3))
    for sampler in ("euler", "heun", "ddim"):
        calls.clear()
        with jax.disable_jit():  # scan and cond run as Python: every call is seen
            sample(model_fn, noise, process="flow", prediction="flow", sampler=sampler, num_steps=5,
                   key=jax.random.key(0))
        assert len(calls) == flops.sampler_model_calls(sampler, 5), sampler
    model = build("joint")
    one = flops.forward_flops(model, 1, CLIP, TEXT)
    assert flops.sample_flops_per_clip(model, CLIP, sampler="heun", steps=5, guidance_variants=2,
                                       text_len=TEXT) == 9 * 2 * one


def test_scanned_model_counts_like_the_unrolled_one():
    unrolled = build("interleaved").dit
    scanned = build("interleaved", scan_layers=True).dit
    assert flops.dit_forward_flops(scanned, B, CLIP, TEXT) == flops.dit_forward_flops(unrolled, B, CLIP, TEXT)


def test_peaks_and_meter():
    assert mfu.device_peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert mfu.device_peak_flops("TPU v5 lite", "float32") == 197e12
    assert mfu.device_peak_flops("TPU v5p", "bfloat16") == 459e12
    assert mfu.device_peak_flops("cpu", "float32") is None
    from configs import quickstart
    from vdm import sharding

    config = quickstart.get_config()
    config.train.peak_flops = 1e12
    mesh = sharding.make_mesh({"data": -1})
    meter = mfu.ThroughputMeter(config, mesh)
    assert meter.peak == (1e12, "config")
    m = meter.metrics(2.0)
    assert m["tokens_per_s"] == 2.0 * 32 * 8 * 16  # batch 32, 8 frames of 4x4 tokens
    assert m["mfu"] == pytest.approx(2.0 * meter.step_flops / 1e12)
    config.train.peak_flops = 0.0  # CPU: measured once, a plausible number
    peak, source = mfu.ThroughputMeter(config, mesh).peak
    assert source.startswith("measured") and 1e9 < peak < 1e14


def test_cpu_peak_keeps_the_best_measurement_per_machine(tmp_path, monkeypatch):
    """A run on a busy machine measures a low peak; the best seen on this machine is used
    instead, so MFU is not inflated when the machine frees up. A bad cache is ignored."""
    monkeypatch.setenv("VDM_CACHE_DIR", str(tmp_path))
    measured = iter([100e9, 40e9, 250e9])
    monkeypatch.setattr(mfu, "measured_matmul_peak", lambda size, dtype: next(measured))
    assert mfu.best_cpu_matmul_peak() == 100e9   # first: the measurement itself
    assert mfu.best_cpu_matmul_peak() == 100e9   # busy (40e9 measured): the kept best
    assert mfu.best_cpu_matmul_peak() == 250e9   # a better measurement replaces it
    kept = json.loads((tmp_path / "matmul_peak.json").read_text())
    assert list(kept.values()) == [250e9] and "cores" in next(iter(kept))
    (tmp_path / "matmul_peak.json").write_text("{not json")
    monkeypatch.setattr(mfu, "measured_matmul_peak", lambda size, dtype: 70e9)
    assert mfu.best_cpu_matmul_peak() == 70e9    # corrupt cache: the measurement, and rewritten
    assert json.loads((tmp_path / "matmul_peak.json").read_text()) == {next(iter(kept)): 70e9}
