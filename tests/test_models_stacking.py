"""The fast paths compute what the plain path computes: scan over layers equals the
unrolled blocks, remat changes neither loss nor gradients, bf16 compute stays close
to fp32 with fp32 parameters, and attention backends fall back or fail by name."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vdm import sharding
from vdm.models import VideoDiT
from vdm.models.attention_backends import AttentionBackendUnavailable, resolve_attention_impl
from vdm.models.dit import layout_period
from vdm.models.stacking import load_unrolled

KW = dict(input_size=(4, 4, 4), in_channels=3, out_channels=3, patch_size=(1, 2, 2), hidden=16,
          depth=4, num_heads=2, cond_dim=8, context_dim=8, temporal_window=2)
B = 2


def make(**over):
    return VideoDiT(**{**KW, **over}, rngs=nnx.Rngs(0))


def randomize(module, seed=0, scale=0.2):
    """Noise on every parameter, so zero-initialised gates and outputs are live."""
    state = nnx.state(module, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    nnx.update(module, jax.tree.unflatten(treedef, noisy))
    return module


def inputs(seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(k[0], (B, 4, 4, 4, 3))
    t = jnp.array([0.3, 0.8])
    kw = dict(cond=jax.random.normal(k[1], (B, 8)), context=jax.random.normal(k[2], (B, 3, 8)),
              context_mask=jnp.array([[True, True, False], [True, True, True]]))
    return x, t, kw


@nnx.jit
def run(model, x, t, kw):
    return model(x, t, **kw)


def scanned_copy(unrolled: VideoDiT, **over) -> VideoDiT:
    """A scan_layers model holding exactly the unrolled model's weights."""
    scanned = make(scan_layers=True, **over)
    rest = nnx.state(unrolled, nnx.Param)
    del rest["blocks"]
    nnx.update(scanned, rest)
    load_unrolled(scanned.block_stacks, unrolled.blocks)
    return scanned


@pytest.mark.parametrize("layout", ["sequential", "interleaved", "joint"])
def test_scan_over_layers_equals_unrolled(layout):
    unrolled = randomize(make(layout=layout))
    scanned = scanned_copy(unrolled, layout=layout)
    x, t, kw = inputs()
    want = run(unrolled, x, t, kw)
    np.testing.assert_allclose(run(scanned, x, t, kw), want, rtol=2e-5, atol=2e-5)
    assert float(jnp.abs(want).mean()) > 0.1  # the blocks are live, not identity
    # same parameter count; stacked kernels carry the replicated 'layers' axis first
    count = lambda m: sum(a.size for a in jax.tree.leaves(nnx.state(m, nnx.Param)))
    assert count(scanned) == count(unrolled)
    qkv = scanned.block_stacks[0].attn[0].qkv.kernel
    assert qkv.shape[0] == KW["depth"] // layout_period(layout)
    assert qkv.get_metadata()["out_sharding"][0] == "layers"
    mesh = sharding.make_mesh({"data": 1, "fsdp": 2, "tensor": 2, "sequence": -1})
    specs = sharding.state_shardings(nnx.state(scanned, nnx.Param), mesh)
    assert specs["block_stacks"][0]["attn"][0]["qkv"]["kernel"].get_value().spec == \
        jax.sharding.PartitionSpec(None, "fsdp", None, "tensor", None)


def test_unscanned_parameter_tree_is_unchanged():
    state = nnx.state(make(layout="interleaved"), nnx.Param)
    assert "block_stacks" not in state and len(state["blocks"]) == 4
    assert state["blocks"][3]["mlp"]["fc2"]["kernel"].shape == (64, 16)


def test_scan_layers_needs_whole_periods():
    with pytest.raises(ValueError, match="depth divisible by 2"):
        make(layout="interleaved", depth=3, scan_layers=True)
    with pytest.raises(ValueError, match="remat"):
        make(remat="some")


def _loss_and_grads(model, x, t, kw):
    """(loss, output), gradients w.r.t. the parameters: one compiled program."""
    graphdef, params = nnx.split(model)

    def loss(params):
        out = nnx.merge(graphdef, params)(x, t, **kw)
        return jnp.mean(jnp.square(out - x)), out

    return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)


@pytest.mark.parametrize("remat,scan", [("dots", False), ("full", True)])
def test_remat_keeps_loss_and_gradients(remat, scan):
    base = randomize(make(layout="interleaved"))
    if scan:
        base = scanned_copy(base, layout="interleaved")
    other = make(layout="interleaved", remat=remat, scan_layers=scan)
    nnx.update(other, nnx.state(base, nnx.Param))
    x, t, kw = inputs(1)
    (loss0, _), grads0 = _loss_and_grads(base, x, t, kw)
    (loss1, _), grads1 = _loss_and_grads(other, x, t, kw)
    np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
    for g0, g1 in zip(jax.tree.leaves(grads0), jax.tree.leaves(grads1)):
        np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads0)) > 1e-3


def test_bf16_compute_is_close_to_fp32_with_fp32_parameters():
    full = randomize(make(layout="sequential"))
    half = make(layout="sequential", dtype=jnp.bfloat16)
    nnx.update(half, nnx.state(full, nnx.Param))
    assert {a.dtype for a in jax.tree.leaves(nnx.state(half, nnx.Param))} == {jnp.dtype("float32")}
    x, t, kw = inputs(2)
    (_, want), g_full = _loss_and_grads(full, x, t, kw)
    (_, got), g_half = _loss_and_grads(half, x, t, kw)
    assert got.dtype == jnp.float32
    # the matmuls really ran in bf16: not bit-equal, but within bf16's ~3 significant digits
    err = float(jnp.abs(got - want).max()) / float(jnp.abs(want).max())
    assert 0 < err < 0.05, err
    # and the gradients w.r.t. the fp32 master weights agree in direction
    a = jnp.concatenate([g.ravel() for g in jax.tree.leaves(g_full)])
    b = jnp.concatenate([g.ravel() for g in jax.tree.leaves(g_half)])
    assert b.dtype == jnp.float32
    assert float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b))) > 0.99


def test_attention_backends_fall_back_or_fail_by_name():
    assert resolve_attention_impl("", dtype="float32", platform="cpu") == "einsum"  # fastest here
    assert resolve_attention_impl("", dtype="bfloat16", platform="gpu") is None  # XLA's choice
    assert resolve_attention_impl("einsum", dtype="float32", platform="gpu") == "einsum"
    assert resolve_attention_impl("xla", dtype="float32", platform="cpu") == "xla"
    with pytest.warns(RuntimeWarning, match="needs an NVIDIA GPU and this platform is 'cpu'"):
        assert resolve_attention_impl("cudnn", dtype="bfloat16", platform="cpu") == "xla"
    with pytest.warns(RuntimeWarning, match="bfloat16 or float16 compute and model.dtype is float32"):
        assert resolve_attention_impl("cudnn", dtype="float32", platform="gpu") == "xla"
    assert resolve_attention_impl("cudnn", dtype="bfloat16", platform="gpu") == "cudnn"
    with pytest.raises(AttentionBackendUnavailable, match="needs an NVIDIA GPU"):
        resolve_attention_impl("cudnn", dtype="bfloat16", platform="cpu", strict=True)
    assert resolve_attention_impl("splash", dtype="float32", platform="tpu") == "splash"
    with pytest.warns(RuntimeWarning, match="'splash' cannot run: it is a TPU kernel and this platform is 'gpu'"):
        assert resolve_attention_impl("splash", dtype="bfloat16", platform="gpu") == "xla"
    with pytest.raises(AttentionBackendUnavailable, match="TPU kernel"):
        resolve_attention_impl("splash", dtype="float32", platform="cpu", strict=True)
    with pytest.raises(ValueError, match="'flash' is not one of"):
        resolve_attention_impl("flash", dtype="float32")


def test_every_backend_builds_and_runs_here():
    """Through the config path: each selectable backend gives a working model on this CPU."""
    from configs import quickstart
    from vdm.train.state import build_model

    def build(impl):
        config = quickstart.get_config()
        config.model.update(attention_impl=impl, depth=1, hidden=32, num_heads=2, text_depth=1,
                            text_width=32)
        return build_model(config, nnx.Rngs(0))

    assert build("xla").dit.blocks[0].attn[0].attention_impl == "xla"
    default = build("")
    assert default.dit.blocks[0].attn[0].attention_impl == "einsum"
    with pytest.warns(RuntimeWarning, match="'cudnn' cannot run"):  # tests run on CPU
        fallback = build("cudnn")
    assert fallback.dit.blocks[0].attn[0].attention_impl == "xla"
    with pytest.warns(RuntimeWarning, match="'splash' cannot run"):
        assert build("splash").dit.blocks[0].attn[0].attention_impl == "xla"
    x = jax.random.normal(jax.random.key(0), (1, 8, 16, 16, 3))
    kw = dict(text_ids=jnp.ones((1, 40), jnp.int32), text_mask=jnp.ones((1, 40), bool))
    np.testing.assert_allclose(run(fallback, x, jnp.ones(1), kw), run(default, x, jnp.ones(1), kw),
                               atol=1e-5)


def test_bf16_config_computes_the_text_encoder_in_bf16_too():
    """model.dtype reaches every matmul, the text encoder's included; parameters stay fp32."""
    from configs import quickstart
    from vdm.train.state import build_model

    config = quickstart.get_config()
    config.model.update(dtype="bfloat16", depth=1, hidden=32, num_heads=2, text_depth=1, text_width=32)
    encoder = build_model(config, nnx.Rngs(0)).text_encoder
    layers = [m for _, m in encoder.iter_modules() if isinstance(m, (nnx.Linear, nnx.LinearGeneral, nnx.Embed))]
    assert len(layers) >= 4 and {m.dtype for m in layers} == {jnp.dtype("bfloat16")}
    assert {a.dtype for a in jax.tree.leaves(nnx.state(encoder, nnx.Param))} == {jnp.dtype("float32")}


def test_position_tables_are_constants_of_the_compiled_program():
    """RoPE and sin-cos position tables are computed once at trace time: staged, XLA fused
    their cos/sin into every consumer and recomputed them per batch element and head. The
    only sines and cosines left in the program are the timestep embedding's ([B, ...])."""
    model = make(pos_embed="both")
    x, t, kw = inputs()
    graphdef, state = nnx.split(model)
    forward = lambda state, x, t: nnx.merge(graphdef, state)(x, t, **kw)
    hlo = jax.jit(forward).lower(state, x, t).as_text()
    trig = [line for line in hlo.splitlines() if "stablehlo.cosine" in line or "stablehlo.sine" in line]
    shapes = [s for line in trig for s in re.findall(r"tensor<([\dx]+)xf32>", line)]
    assert trig and all(s.split("x")[0] == str(B) and len(s.split("x")) == 2 for s in shapes), shapes
