"""Conditioning modes: image, frames, source_video (+ text), their dropout, guidance,
clamping of given frames, and SDEdit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import shapes_multitask
from vdm import conditioning, frame_masks, sharding
from vdm.sampling import Generator
from vdm.train.state import build_model, create_state, make_optimizer, split_model, video_shape
from vdm.train.step import make_train_step

NAMES = list(conditioning.REGISTRY)


def config_with(names):
    c = shapes_multitask.get_config("smoke")
    c.model.depth = 1
    for n in NAMES:
        c.conditions[n].enabled = n in names
    return c


def fake_batch(config, batch=4, seed=0):
    T, H, W, C = video_shape(config)
    rng = np.random.default_rng(seed)
    L = config.data.text_max_len
    ids = rng.integers(3, 200, (batch, L)).astype(np.int32)
    return {
        "video": rng.uniform(-1, 1, (batch, T, H, W, C)).astype(np.float32),
        "source_video": rng.uniform(-1, 1, (batch, T, H, W, C)).astype(np.float32),
        "text_ids": ids,
        "text_mask": np.ones((batch, L), bool),
    }


# None, each alone, and all together (every channel-concat group next to the others, text's
# adaLN and cross-attention beside them); pairs add compiles but no new code path.
COMBINATIONS = [(), *[(n,) for n in NAMES], tuple(NAMES)]


@pytest.mark.parametrize("on", COMBINATIONS, ids=lambda c: "+".join(c) or "unconditional")
def test_every_combination_builds_and_trains_a_step(on):
    config = config_with(on)
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    with sharding.use_mesh(mesh):
        graphdef, state, _ = create_state(config, mesh)
    tx, _ = make_optimizer(config)
    step = jax.jit(make_train_step(graphdef, tx, config))
    with sharding.use_mesh(mesh):
        new, metrics = step(state, fake_batch(config), jax.random.key(0))
    assert np.isfinite(float(metrics["loss"]))
    assert int(new.step) == 1
    assert float(metrics["grad_norm"]) > 0
    # The model takes exactly the enabled conditions' inputs.
    model = nnx.merge(graphdef, state.params)
    channels = sum(c for _, c in conditioning.concat_layout(conditioning.enabled(config.conditions)))
    assert model.dit.concat_channels == channels
    assert (model.text_encoder is not None) == ("text" in on)


@pytest.fixture(scope="module")
def multitask():
    config = config_with(NAMES)
    model = build_model(config, nnx.Rngs(1))
    # adaLN-Zero gates start closed: open them so every input can reach the output.
    graphdef, params = split_model(model)
    params = jax.jit(lambda ps: jax.tree.map(
        lambda p: p + 0.05 * jax.random.normal(jax.random.key(2), p.shape), ps))(params)
    apply = jax.jit(lambda params, x, t, inputs: nnx.merge(graphdef, params)(x, t, **inputs))
    return config, lambda x, t, **inputs: apply(params, x, t, inputs)


@pytest.mark.parametrize("name", NAMES)
def test_dropped_condition_is_really_dropped(multitask, name):
    config, model = multitask
    names = conditioning.enabled(config.conditions)
    b1, b2 = fake_batch(config, 2, seed=1), fake_batch(config, 2, seed=2)
    opts = {n: config.conditions[n].to_dict() for n in names}
    in1 = conditioning.training_inputs(b1, names, jax.random.key(0), opts)
    in2 = conditioning.training_inputs(b2, names, jax.random.key(0), opts)
    # in2 differs from in1 only in this condition's inputs.
    keys = conditioning.REGISTRY[name].batch_keys
    mixed = {k: (in2[k] if k in keys else v) for k, v in in1.items()}
    x = jnp.asarray(b1["video"])
    t = jnp.full((2,), 0.5)
    out_1 = model(x, t, **in1)
    out_mixed = model(x, t, **mixed)
    assert float(jnp.abs(out_1 - out_mixed).max()) > 1e-4  # the condition matters...
    dropped_1 = model(x, t, **conditioning.drop(in1, [name]))
    dropped_mixed = model(x, t, **conditioning.drop(mixed, [name]))
    np.testing.assert_array_equal(dropped_1, dropped_mixed)  # ...and dropping removes all of it


def test_training_dropout_drops_per_example():
    config = config_with(["image", "text"])
    config.conditions.image.anchors = {"first": 1.0}
    names = conditioning.enabled(config.conditions)
    inputs = conditioning.training_inputs(fake_batch(config, 64), names, jax.random.key(0),
                                          {n: config.conditions[n].to_dict() for n in names})
    out, dropped = conditioning.training_dropout(inputs, names, {"image": 0.5, "text": 0.0}, 0.0,
                                                 jax.random.key(3))
    d = np.asarray(dropped["image"])
    assert 10 < d.sum() < 54 and not np.asarray(dropped["text"]).any()
    assert (np.asarray(out["image_mask"])[d] == 0).all() and (np.asarray(out["image"])[d] == 0).all()
    assert (np.asarray(out["image_mask"])[~d].sum(-1) == 1).all()  # 'first' anchors: one frame


def test_guidance_with_all_scales_one_is_the_conditional_prediction(multitask):
    config, model = multitask
    names = conditioning.enabled(config.conditions)
    b = fake_batch(config, 2)
    inputs = conditioning.training_inputs(b, names, jax.random.key(0),
                                          {n: config.conditions[n].to_dict() for n in names})
    calls = []

    def apply(x, t, **kw):
        calls.append(x.shape[0])
        return model(x, t, **kw)

    x, t = jnp.asarray(b["video"]), jnp.full((2,), 0.7)
    out = conditioning.guided(apply, inputs, names, {n: 1.0 for n in names})(x, t)
    np.testing.assert_array_equal(out, model(x, t, **inputs))
    assert calls == [2]  # one plain call
    # Scales other than 1: the nested combination, computed as one batched call.
    calls.clear()
    scales = {"source_video": 1.5, "image": 1.0, "frames": 1.0, "text": 3.0}
    out = conditioning.guided(apply, inputs, names, scales)(x, t)
    full = model(x, t, **inputs)
    none = model(x, t, **conditioning.drop(inputs, names))
    src = model(x, t, **conditioning.drop(inputs, ["image", "frames", "text"]))
    no_text = model(x, t, **conditioning.drop(inputs, ["text"]))
    expect = none + 1.5 * (src - none) + 1.0 * (no_text - src) + 3.0 * (full - no_text)
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4)
    # One batched call of 4 variants: none, source, source+image+frames, all. The variant
    # source+image has weight 0 (image at scale 1 merges it into its neighbours): skipped.
    assert calls == [2 * 4]


@pytest.fixture(scope="module")
def generator():
    config = config_with(NAMES)
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    with sharding.use_mesh(mesh):
        graphdef, state, _ = create_state(config, mesh)
    return Generator(config, graphdef, state.params, mesh)


def test_clamped_given_frames_are_reproduced_exactly(generator):
    T, H, W, _ = generator.video_shape
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, H, W, 3), dtype=np.uint8)
    out = generator.generate(["a red circle moves left"], num=2, image=image, steps=3)
    np.testing.assert_array_equal(out[:, 0], image)
    last = rng.integers(0, 256, (1, 1, H, W, 3), dtype=np.uint8)
    out = generator.generate(["x"], num=2, image=last, image_at=[-1], steps=3)
    np.testing.assert_array_equal(out[:, -1], np.repeat(last[:, 0], 2, 0))
    prefix = rng.integers(0, 256, (1, 2, H, W, 3), dtype=np.uint8)
    out = generator.generate(["x"], num=2, frames=prefix, steps=3)
    np.testing.assert_array_equal(out[:, :2], np.repeat(prefix, 2, 0))
    unclamped = generator.generate(["x"], num=2, frames=prefix, steps=3, clamp=False)
    assert not np.array_equal(unclamped[:, :2], np.repeat(prefix, 2, 0))


def test_sdedit_small_strength_returns_the_source(generator):
    T, H, W, _ = generator.video_shape
    src = np.random.default_rng(1).integers(0, 256, (1, T, H, W, 3), dtype=np.uint8)
    out = generator.generate(["x"], num=1, source=src, strength=1e-4, steps=3)
    assert np.abs(out.astype(int) - src).max() <= 1
    far = generator.generate(["x"], num=1, source=src, strength=1.0, steps=3)
    assert np.abs(far.astype(int) - src).mean() > 20


def test_bad_condition_inputs_are_named(generator):
    T, H, W, _ = generator.video_shape
    with pytest.raises(ValueError, match="resolution"):
        generator.generate(["x"], num=1, image=np.zeros((1, H + 1, W, 3), np.uint8), steps=2)
    with pytest.raises(ValueError, match=f"needs {T}"):
        generator.generate(["x"], num=1, source=np.zeros((1, T - 1, H, W, 3), np.uint8), steps=2)
    with pytest.raises(ValueError, match="strength"):
        generator.generate(["x"], num=1, strength=0.5, steps=2)
    with pytest.raises(ValueError, match="nothing to generate"):
        generator.generate(["x"], num=1, frames=np.zeros((1, T, H, W, 3), np.uint8), steps=2)
    t2v = Generator(config_with(["text"]), *_state(config_with(["text"])))
    with pytest.raises(ValueError, match="without the 'image' condition"):
        t2v.generate(["x"], num=1, image=np.zeros((1, H, W, 3), np.uint8), steps=2)


def _state(config):
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    with sharding.use_mesh(mesh):
        graphdef, state, _ = create_state(config, mesh)
    return graphdef, state.params, mesh


def test_frame_mask_strategies():
    T, B = 8, 512
    key = jax.random.key(0)
    first = np.asarray(frame_masks.sample_masks(key, B, T, {"first": 1.0}))
    assert (first[:, 0] == 1).all() and first.sum() == B
    fl = np.asarray(frame_masks.sample_masks(key, B, T, {"first_last": 1.0}))
    assert (fl.sum(1) == 2).all() and (fl[:, -1] == 1).all()
    prefix = np.asarray(frame_masks.sample_masks(key, B, T, {"prefix": 1.0}))
    k = prefix.sum(1)
    assert k.min() == 1 and k.max() == T - 1
    np.testing.assert_array_equal(prefix, np.arange(T)[None] < k[:, None])  # a prefix, not any subset
    rand = np.asarray(frame_masks.sample_masks(key, B, T, {"random": 1.0}))
    assert (rand.sum(1) >= 1).all() and (rand.sum(1) <= T - 1).all()
    mix = np.asarray(frame_masks.sample_masks(key, 4000, T, {"first": 0.75, "last": 0.25}))
    assert abs(mix[:, 0].mean() - 0.75) < 0.03
    with pytest.raises(ValueError, match="unknown strategies"):
        frame_masks.sample_masks(key, B, T, {"middle": 1.0})
    np.testing.assert_array_equal(frame_masks.mask_from_indices([0, -1], 4), [1, 0, 0, 1])
    with pytest.raises(ValueError, match="outside"):
        frame_masks.mask_from_indices([4], 4)
