"""optim.optimizer=muon: which parameters Muon steps and how, on one device and on a mesh,
and that a run with it resumes exactly."""
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optax.contrib import MuonDimensionNumbers as Dims

from configs import shapes_t2v
from smoke_config import losses, smoke_config
from vdm import sharding
from vdm.config_check import impossible_values
from vdm.train import checkpoint
from vdm.train.loop import train
from vdm.train.muon import muon_axes, muon_dimension_numbers
from vdm.train.state import abstract_model, create_abstract_state, make_optimizer


@pytest.mark.parametrize("names, want", [
    (("embed", "mlp"), Dims((0,), (1,))),                              # fc1
    (("mlp", "embed"), Dims((0,), (1,))),                              # fc2
    (("embed", None, "heads", "head_dim"), Dims((0,), (2, 3))),        # qkv: q, k, v apart
    (("embed", "heads", "head_dim"), Dims((0,), (1, 2))),              # cross-attention q
    (("heads", "head_dim", "embed"), Dims((0, 1), (2,))),              # attention output
    (("cond", None, "embed"), Dims((0,), (2,))),                       # adaLN: each vector apart
    (("layers", "embed", "mlp"), Dims((1,), (2,))),                    # scanned: each layer apart
    (("layers", "heads", "head_dim", "embed"), Dims((1, 2), (3,))),
    (("patch", "embed"), None),                                        # patch embedding
    (("embed", "patch"), None),                                        # output head
    (("vocab", "embed"), None),                                        # token table
    ((None, "embed"), None),                                           # position table
    ((None, "heads", "head_dim"), None),                               # qkv bias
    (("layers", "embed"), None),                                       # scanned bias
    (("embed",), None),
    (None, None),                                                      # unnamed
])
def test_axes_from_logical_names(names, want):
    assert muon_axes(names) == want


def _leaves(tree):
    is_leaf = lambda x: x is None or isinstance(x, Dims)
    return {jax.tree_util.keystr(p): d for p, d in jax.tree_util.tree_leaves_with_path(tree, is_leaf=is_leaf)}


@pytest.mark.parametrize("overrides", [{}, {"model.scan_layers": True},
                                       {"model.layout": "sequential", "model.cross_attention": True}])
def test_hidden_kernels_are_muons_and_the_rest_adamws(overrides):
    c = shapes_t2v.get_config()
    c.update_from_flattened_dict(overrides)
    _, params = abstract_model(c)
    dims = _leaves(muon_dimension_numbers(params))
    assert len(dims) == len(jax.tree.leaves(params))
    edge = ("patch_embed", "'final']['linear'", "token_embed")
    for path, d in dims.items():
        if path.endswith("['kernel']") and not any(e in path for e in edge):
            assert d is not None, path
            # The matrix is the layer's full fan-in by fan-out (never a bias-like slice).
            assert len(d.reduction_axis) >= 1 and len(d.output_axis) >= 1, path
        else:
            assert d is None, path
    assert sum(d is not None for d in dims.values()) >= 4 * c.model.depth


# --- the update ---------------------------------------------------------------------

def tiny_config(optimizer="muon"):
    c = shapes_t2v.get_config("smoke")
    c.model.hidden, c.model.num_heads, c.model.depth = 64, 2, 1
    c.model.text_width, c.model.text_heads = 32, 2
    c.optim.optimizer = optimizer
    c.optim.warmup_steps = 0
    c.optim.weight_decay = 0.0
    c.optim.clip_norm = 1e9  # the raw gradients reach the optimizer
    return c


def spread_gradients(abstract, seed=0):
    """Random gradients whose singular values span two orders of magnitude."""
    rng = np.random.default_rng(seed)

    def one(a):
        g = rng.standard_normal(a.shape).astype(np.float32)
        if a.ndim >= 2:  # scale the leading axis: a wide spread of singular values
            g *= np.geomspace(1.0, 0.01, a.shape[0], dtype=np.float32).reshape((-1,) + (1,) * (a.ndim - 1))
        return g

    return jax.tree.map(one, abstract)


def first_update(config, grads):
    _, abstract = abstract_model(config)
    params = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), abstract)
    tx, _ = make_optimizer(config)
    # One compiled program: op-by-op, the per-matrix Newton-Schulz loops dispatch slowly.
    updates, _ = jax.jit(lambda g, p: tx.update(g, tx.init(p), p))(grads, params)
    return updates


def _by_path(tree):
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def test_hidden_matrices_step_by_their_orthogonalised_gradient():
    c = tiny_config()
    _, abstract = abstract_model(c)
    grads = spread_gradients(abstract)
    up, g = _by_path(first_update(c, grads)), _by_path(grads)
    lr, rms = c.optim.lr, c.optim.muon_rms
    fc1 = next(k for k in up if "['mlp']['fc1']['kernel']" in k)
    sv_g = np.linalg.svd(g[fc1], compute_uv=False)
    sv_u = np.linalg.svd(up[fc1], compute_uv=False)
    assert sv_g.max() / sv_g.min() > 50
    # Newton-Schulz maps every singular value into about [0.7, 1.2]: the spectrum is flat.
    assert sv_u.max() / sv_u.min() < 2.0
    # Same singular vectors as the gradient (the update is -U f(S) V^T): U^T update V is diagonal.
    u, _, vt = np.linalg.svd(g[fc1], full_matrices=False)
    core = u.T @ up[fc1] @ vt.T
    assert np.abs(core - np.diag(np.diag(core))).max() < 0.05 * np.abs(np.diag(core)).max()
    assert np.all(np.diag(core) < 0)  # a descent step
    # AdamW's update RMS: rms x lr (x the Newton-Schulz gain, 0.7-1.2).
    assert 0.6 * rms * lr < np.sqrt(np.mean(up[fc1] ** 2)) < 1.2 * rms * lr
    # q, k and v are three matrices: a zero gradient for k leaves k alone, q and v still move.
    qkv = next(k for k in up if "['attn'][0]['qkv']['kernel']" in k)
    zeroed = jax.tree_util.tree_map_with_path(
        lambda p, x: x.at[:, 1].set(0.0) if jax.tree_util.keystr(p) == qkv else x,
        jax.tree.map(jnp.asarray, grads))
    q_k_v = _by_path(first_update(c, zeroed))[qkv]
    assert not np.any(q_k_v[:, 1]) and np.abs(q_k_v[:, 0]).min() > 0 and np.abs(q_k_v[:, 2]).min() > 0


def test_edge_layers_and_vectors_step_as_adamw():
    muon, adamw = tiny_config("muon"), tiny_config("adamw")
    _, abstract = abstract_model(muon)
    grads = spread_gradients(abstract, seed=1)
    up_m, up_a = _by_path(first_update(muon, grads)), _by_path(first_update(adamw, grads))
    dims = _leaves(muon_dimension_numbers(abstract))
    assert any(d is None for d in dims.values()) and any(d is not None for d in dims.values())
    for path, d in dims.items():
        key = path + ".value" if path + ".value" in up_m else path
        if d is None:
            np.testing.assert_allclose(up_m[key], up_a[key], rtol=1e-6, atol=1e-12)
        else:
            assert not np.allclose(up_m[key], up_a[key])


def test_update_on_a_mesh_equals_one_device():
    """Newton-Schulz on FSDP- and tensor-sharded matrices: the same update as unsharded."""
    c = tiny_config()
    _, abstract = abstract_model(c)
    grads = spread_gradients(abstract, seed=2)
    tx, _ = make_optimizer(c)

    def run(shape):
        mesh = sharding.make_mesh(dict(zip(sharding.MESH_AXES, shape)),
                                  devices=jax.devices()[:math.prod(shape)])
        _, target = create_abstract_state(c, mesh)  # also: the Muon state has shardings
        param_sh = jax.tree.map(lambda a: a.sharding, target.params)
        opt_sh = jax.tree.map(lambda a: a.sharding, target.opt_state)
        params = jax.device_put(jax.tree.map(lambda a: np.full(a.shape, 0.01, a.dtype), abstract), param_sh)
        g = jax.device_put(grads, param_sh)
        init = jax.jit(tx.init, out_shardings=opt_sh)
        step = jax.jit(lambda g, s, p: tx.update(g, s, p), out_shardings=(param_sh, opt_sh))
        state = init(params)
        for _ in range(2):
            updates, state = step(g, state, params)
        return _by_path(jax.device_get(updates))

    one, eight = run((1, 1, 1, 1)), run((2, 2, 1, 2))
    assert one.keys() == eight.keys()
    for k in one:
        np.testing.assert_allclose(eight[k], one[k], rtol=1e-4, atol=1e-5 * float(np.abs(one[k]).max()))


def test_a_muon_run_resumes_exactly(data_dir, tmp_path):
    c = smoke_config(data_dir, **{"train.num_steps": 4, "train.ckpt_every": 100,
                                  "optim.optimizer": "muon"})
    c.eval.num_samples = 0  # no grounded evaluation at the end
    train(c, str(tmp_path / "whole"))
    assert not os.path.exists(tmp_path / "whole" / "eval")
    out = train(c, str(tmp_path / "resumed"), stop_after=2)
    assert out["final_step"] == 2
    train(c, str(tmp_path / "resumed"))
    a, b = losses(tmp_path / "whole"), losses(tmp_path / "resumed")
    assert [a[s] for s in (1, 2, 3, 4)] == [b[s] for s in (1, 2, 3, 4)]  # bitwise
    whole, resumed = (checkpoint.load_state(str(tmp_path / wd), 4, c) for wd in ("whole", "resumed"))
    assert jax.tree.structure(whole.opt_state) == jax.tree.structure(resumed.opt_state)
    for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(x, y)  # parameters, Muon and AdamW moments, EMA, step, RNG


def test_unknown_optimizer_is_named():
    c = tiny_config("lion")
    assert impossible_values(c) == ["optim.optimizer='lion' must be one of adamw, muon"]
    with pytest.raises(ValueError, match="optim.optimizer='lion' is not one of"):
        make_optimizer(c)
