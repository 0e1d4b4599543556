"""make_optimizer: the text encoder's own learning-rate scale."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.quickstart import get_config
from vdm.config_check import impossible_values
from vdm.train.state import TEXT_MODULE, abstract_model, make_optimizer


def _random_like(tree, seed):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)])


def _updates_after(config, steps=3):
    """The updates of ``steps`` optimizer steps on fixed random gradients (Adam moments warm)."""
    _, abstract = abstract_model(config)
    params = _random_like(abstract, 0)
    tx, _ = make_optimizer(config)
    state = tx.init(params)
    update = jax.jit(tx.update)  # compiled once: op by op, the per-leaf steps dispatch slowly
    out = []
    for i in range(steps):
        updates, state = update(_random_like(abstract, i + 1), state, params)
        out.append(updates)
    return out, state


def _split(updates):
    """(text encoder leaves, other leaves) of an update tree."""
    text, rest = [], []
    for path, u in jax.tree_util.tree_leaves_with_path(updates):
        (text if path[0].key == TEXT_MODULE else rest).append(np.asarray(u))
    return text, rest


def _config(scale):
    c = get_config(None)
    c.optim.warmup_steps = 0  # a non-zero rate from the first step
    c.optim.text_lr_scale = scale
    return c


def test_text_updates_scale_and_the_rest_are_untouched():
    base, _ = _updates_after(_config(1.0))
    half, _ = _updates_after(_config(0.5))
    for b, h in zip(base, half):
        bt, br = _split(b)
        ht, hr = _split(h)
        assert bt and br  # both modules hold parameters
        for x, y in zip(br, hr):
            np.testing.assert_array_equal(x, y)  # the DiT's steps are bitwise those of scale 1
        for x, y in zip(bt, ht):
            assert np.abs(x).max() > 0
            np.testing.assert_allclose(y, 0.5 * x, rtol=1e-6, atol=1e-12)


def test_scale_zero_freezes_the_text_encoder():
    (updates, *_), _ = _updates_after(_config(0.0), steps=1)
    text, rest = _split(updates)
    assert all(not np.any(u) for u in text)
    assert all(np.any(u) for u in rest if u.size > 1)


def test_default_scale_keeps_the_optimizer_state_structure():
    """Runs saved before the field existed restore into the same optimizer state tree."""
    c = _config(1.0)
    _, abstract = abstract_model(c)
    params = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), abstract)
    o = c.optim
    before = optax.chain(optax.clip_by_global_norm(o.clip_norm),
                         optax.adamw(lambda step: 1e-3, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay))
    tx, _ = make_optimizer(c)
    assert jax.tree.structure(tx.init(params)) == jax.tree.structure(before.init(params))


def test_scale_without_a_text_encoder_is_refused():
    c = _config(0.5)
    assert impossible_values(c) == []
    c.conditions.text.enabled = False
    # Found with the config's other bad values, before JAX starts, and by the optimizer's init
    # for callers that build one without the check.
    assert [m for m in impossible_values(c) if m.startswith("optim.text_lr_scale=0.5")]
    _, abstract = abstract_model(c)
    with pytest.raises(ValueError, match="optim.text_lr_scale=0.5: the model has no 'text_encoder'"):
        make_optimizer(c)[0].init(abstract)
    c.optim.text_lr_scale = 1.0
    assert impossible_values(c) == []
