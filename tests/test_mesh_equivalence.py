"""Every mesh computes the same train step: loss and gradients on 8 devices equal 1 device.

One tiny model per attention layout, the 8 forced host devices arranged as
(data, fsdp, sequence, tensor) meshes. The compiled programs are also read
back: sequence parallel must switch between spatial and temporal attention
by all-to-all, never by gathering the activation.
"""
import functools
import math
import re

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from configs import shapes_t2v
from vdm import sharding
from vdm.train.state import create_abstract_state, create_state
from vdm.train.step import make_loss_and_grads

MESHES = [(8, 1, 1, 1), (2, 4, 1, 1), (2, 1, 2, 2), (1, 2, 4, 1), (1, 1, 8, 1)]
LAYOUTS = ["sequential", "interleaved", "joint"]
B, T, HW = 8, 8, 16   # batch, frames, height = width: 8 latent frames of 4x4 = 16 tokens, D = 32


def tiny_config(layout, text=False):
    """A DiT small enough to compile ~20 times here: one block (two for interleaved, so both
    kinds of attention occur), RoPE only. ``text``: with the text encoder and cross-attention."""
    c = shapes_t2v.get_config("smoke")
    c.data.config = "quickstart"   # 16x16 clips; only its shape is read, nothing is built
    c.data.num_frames = T
    c.data.text_max_len = 8
    c.model.patch_size = (1, 4, 4)
    c.model.layout = layout
    c.model.hidden, c.model.num_heads = 32, 2
    c.model.depth = 2 if layout == "interleaved" else 1
    c.model.pos_embed = "rope"
    c.model.text_width, c.model.text_heads = 16, 2
    c.model.cross_attention = text   # queries from the sequence-sharded tokens
    c.conditions.text.enabled = text
    return c


def make_batch():
    rng = np.random.default_rng(0)
    return {"video": rng.uniform(-1, 1, (B, T, HW, HW, 3)).astype(np.float32),
            "text_ids": rng.integers(3, 259, (B, 8)).astype(np.int32),
            "text_mask": np.arange(8)[None, :] < rng.integers(2, 9, (B, 1))}


def mesh_of(shape):
    return sharding.make_mesh(dict(zip(sharding.MESH_AXES, shape)), devices=jax.devices()[:math.prod(shape)])


@functools.lru_cache(maxsize=None)
def host_params(layout, text):
    """Initial parameters, perturbed: with adaLN-Zero's zero gates and zero output layer every
    block would be switched off and most gradients exactly 0."""
    _, state, _ = create_state(tiny_config(layout, text), mesh_of((1, 1, 1, 1)))
    rng = np.random.default_rng(1)
    return jax.tree.map(lambda p: p + 0.05 * rng.standard_normal(p.shape).astype(p.dtype),
                        jax.device_get(state.params))


@functools.lru_cache(maxsize=None)
def compiled_step(layout, shape, text=False):
    """(loss, grads as numpy, compiled HLO text) of one train step's loss and gradients on a mesh."""
    config, mesh = tiny_config(layout, text), mesh_of(shape)
    graphdef, target = create_abstract_state(config, mesh)
    param_sh = jax.tree.map(lambda a: a.sharding, target.params)
    params = jax.device_put(host_params(layout, text), param_sh)
    batch = make_batch()
    batch = {k: jax.device_put(v, sharding.batch_sharding(mesh, v.ndim)) for k, v in batch.items()}
    loss_and_grads = make_loss_and_grads(graphdef, config)

    def fn(params, batch, key):
        with sharding.use_mesh(mesh):
            return loss_and_grads(params, batch, key)

    key = jax.random.key(0)
    step = jax.jit(fn, out_shardings=(sharding.replicated(mesh), param_sh)).lower(params, batch, key).compile()
    loss, grads = step(params, batch, key)
    return float(loss), jax.device_get(grads), step.as_text()


# Every mesh for the default layout; the other layouts on the mesh with every axis split and
# on pure sequence parallel (the two where their attention code differs from sequential's).
CASES = [("sequential", shape, False) for shape in MESHES]
CASES += [(layout, shape, False) for layout in LAYOUTS[1:] for shape in [(2, 1, 2, 2), (1, 1, 8, 1)]]
CASES.append(("sequential", (2, 1, 2, 2), True))   # text encoder and cross-attention, sharded


@pytest.mark.parametrize("layout, shape, text", CASES,
                         ids=["-".join([lay, "x".join(map(str, sh))] + ["text"] * txt) for lay, sh, txt in CASES])
def test_loss_and_grads_match_one_device(layout, shape, text):
    loss1, grads1, _ = compiled_step(layout, (1, 1, 1, 1), text)
    loss, grads, _ = compiled_step(layout, shape, text)
    # Same math in another summation order (float32 reductions split over devices): the loss
    # differs by <1e-7 relative, gradients by up to ~1e-6 of their largest entry (measured);
    # a sharding mistake is O(1).
    assert loss == pytest.approx(loss1, rel=1e-6)
    flat1, flat = jax.tree.leaves(grads1), jax.tree.leaves(grads)
    assert len(flat1) == len(flat)
    for g1, g in zip(flat1, flat):
        assert np.abs(g1).max() > 0   # every parameter takes part
        np.testing.assert_allclose(g, g1, rtol=1e-4, atol=1e-5 * float(np.abs(g1).max()))


# --- parameter placement ------------------------------------------------------------

# What the 'default' rule set says for each large parameter (path suffix -> spec): FSDP
# splits the model width ('embed'), tensor parallel the heads and the MLP hidden units.
EXPECTED_SPECS = {
    ("attn", "qkv", "kernel"): P("fsdp", None, "tensor", None),    # [embed, 3, heads, head_dim]
    ("attn", "out", "kernel"): P("tensor", None, "fsdp"),          # [heads, head_dim, embed]
    ("cross", "q", "kernel"): P("fsdp", "tensor", None),           # [embed, heads, head_dim]
    ("cross", "kv", "kernel"): P("fsdp", None, "tensor", None),    # [context, 2, heads, head_dim]
    ("cross", "out", "kernel"): P("tensor", None, "fsdp"),
    ("mlp", "fc1", "kernel"): P("fsdp", "tensor"),                 # [embed, mlp]
    ("mlp", "fc2", "kernel"): P("tensor", "fsdp"),                 # [mlp, embed]
    ("modulation", "proj", "kernel"): P(None, None, "fsdp"),       # adaLN [cond, n, embed]
    ("modulation", "proj", "bias"): P(None, "fsdp"),               # [n, embed]
    ("fc1", "kernel"): P(None, "fsdp"),                            # conditioning MLPs [cond, embed]
    ("fc2", "kernel"): P(None, "fsdp"),
    ("cond_proj", "kernel"): P(None, "fsdp"),
    ("patch_embed", "kernel"): P(None, "fsdp"),                    # [patch, embed]
    ("final", "linear", "kernel"): P("fsdp", None),                # [embed, patch]
    ("token_embed", "embedding"): P(None, "fsdp"),                 # [vocab, embed]
    ("pos_embed",): P(None, "fsdp"),                               # text positions [len, embed]
}


def expected_spec(path):
    """(readable path, the spec of the longest matching suffix in EXPECTED_SPECS or None)."""
    keys = tuple(k.key for k in path if isinstance(k, jax.tree_util.DictKey) and isinstance(k.key, str))
    suffixes = [sfx for sfx in EXPECTED_SPECS if keys[-len(sfx):] == sfx]
    return "/".join(keys), EXPECTED_SPECS[max(suffixes, key=len)] if suffixes else None


@pytest.mark.parametrize("shape", [(2, 4, 1, 1), (2, 1, 2, 2)], ids=lambda s: "x".join(map(str, s)))
def test_large_parameters_are_placed_by_the_rule_set(shape):
    mesh = mesh_of(shape)
    _, target = create_abstract_state(tiny_config("sequential", text=True), mesh)
    checked = {}
    for part in ("params", "ema", "opt_state"):
        checked[part] = 0
        for path, leaf in jax.tree_util.tree_leaves_with_path(getattr(target, part)):
            if leaf.ndim < 2 or leaf.size < 256:   # biases, norm scales, counters
                continue
            name, spec = expected_spec(path)
            assert spec is not None, f"large parameter {name} {leaf.shape} has no expected placement"
            assert leaf.sharding.spec == spec, f"{part} {name}: {leaf.sharding.spec}, rule set says {spec}"
            checked[part] += 1
    # Every matrix of the parameters, of the EMA and of both Adam moments.
    assert checked["params"] > 20
    assert checked == {"params": checked["params"], "ema": checked["params"], "opt_state": 2 * checked["params"]}


# --- what the compiler made of sequence parallel ----------------------------------------

def collectives(hlo: str, op: str) -> list[tuple[int, ...]]:
    """Output shapes of every ``op`` (e.g. 'all-gather') in compiled HLO text."""
    shapes = []
    for line in hlo.splitlines():
        m = re.search(rf"= (.*?) {op}(?:-start)?\(", line)
        if m:
            shapes += [tuple(int(d) for d in dims.split(",") if d)
                       for dims in re.findall(r"[a-z]\d*\[([\d,]*)\]", m.group(1))]
    return shapes


@pytest.mark.parametrize("layout", ["sequential", "interleaved"])
def test_temporal_attention_under_sequence_parallel_is_an_all_to_all(layout):
    shape = (1, 1, 8, 1)
    _, _, hlo = compiled_step(layout, shape)
    assert collectives(hlo, "all-to-all"), "no all-to-all between spatial and temporal attention"
    # One device's share of an activation [B, T', S, D] is B*T'*S*D/8 = 4096 values; nothing
    # that large is ever gathered (the per-frame conditioning [B, T', D] may be).
    shard = B * T * 16 * 32 // 8
    big = [s for s in collectives(hlo, "all-gather") if math.prod(s) >= shard]
    assert not big, f"all-gathers of activation size under sequence parallel: {big}"


def test_joint_attention_under_sequence_parallel_gathers_only_keys_and_values():
    """Joint layout: queries stay split over 'sequence'; keys and values, [B, T'*S, heads,
    head_dim], are all-gathered (the simple sequence-parallel attention: memory O(T'*S) per
    device for K and V, scores [T'*S/n, T'*S]). einsum_attention (the CPU default) gathers
    them heads-major, [B, heads, T'*S, head_dim]."""
    _, _, hlo = compiled_step("joint", (1, 1, 8, 1))
    gathered = collectives(hlo, "all-gather")
    assert gathered and all(s in [(B, T * 16, 2, 16), (B, 2, T * 16, 16)] for s in gathered), gathered
