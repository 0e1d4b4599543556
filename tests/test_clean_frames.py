"""Given frames as clean frames of the clip (``conditions.<frame condition>.clean``): per-frame
noise levels in the DiT, the Denoiser's replacement, the loss that skips them, and samples
that hold them without clamping."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import shapes_multitask
from vdm import conditioning, sharding
from vdm.diffusion import diffusion_loss, draw_noise, get_process
from vdm.models import VideoDiT
from vdm.sampling import Generator
from vdm.train.state import build_model, create_state, make_optimizer, split_model, video_shape
from vdm.train.step import make_loss_and_grads, make_train_step


def i2v_config(clean=True):
    c = shapes_multitask.get_config("smoke")
    c.model.depth = 1
    for n in conditioning.REGISTRY:
        c.conditions[n].enabled = n in ("text", "image")
    c.conditions.image.clean = clean
    return c


def live(graphdef, params, scale=0.05):
    """Open the adaLN-Zero gates so that every input reaches the output."""
    params = jax.tree.map(lambda p: p + scale * jax.random.normal(jax.random.key(2), p.shape), params)
    return nnx.merge(graphdef, params)


def test_per_frame_t_equal_everywhere_is_the_clip_t():
    model = VideoDiT(input_size=(4, 4, 4), in_channels=3, out_channels=3, patch_size=(2, 2, 2),
                     hidden=16, depth=1, num_heads=2, rngs=nnx.Rngs(0))
    model = live(*nnx.split(model), scale=0.2)
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 4, 3))
    t = jnp.array([0.3, 0.8])
    per_clip = model(x, t)
    np.testing.assert_allclose(model(x, jnp.broadcast_to(t[:, None], (2, 4))), per_clip, atol=1e-5)
    # A tubelet (pt = 2) takes its noisiest frame's level: frames (0, 1) at (0, 0.3) act as 0.3.
    mixed = jnp.array([[0.0, 0.3, 0.3, 0.3], [0.8, 0.1, 0.8, 0.8]])
    np.testing.assert_allclose(model(x, mixed), per_clip, atol=1e-5)
    assert float(jnp.abs(model(x, jnp.array([[0.0, 0.0, 0.3, 0.3], [0.8] * 4])) - per_clip).max()) > 1e-3
    with pytest.raises(ValueError, match="per-frame t"):
        model(x, jnp.zeros((2, 3)))


def test_denoiser_reads_given_frames_clean_at_t_zero():
    config = i2v_config()
    graphdef, params = split_model(build_model(config, nnx.Rngs(0)))
    model = live(graphdef, params)
    assert model.clean == (("image", "image_mask"),)
    T, H, W, C = video_shape(config)
    k = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(k[0], (2, T, H, W, C))
    image = jax.random.uniform(k[1], (2, T, H, W, C), minval=-1, maxval=1)
    mask = jnp.zeros((2, T)).at[0, 0].set(1.0).at[1, T - 1].set(1.0)
    image = image * mask[:, :, None, None, None]
    ids = jnp.ones((2, config.data.text_max_len), jnp.int32)
    text = dict(text_ids=ids, text_mask=jnp.ones_like(ids, bool))
    t = jnp.array([0.7, 0.4])
    out = model(x, t, image=image, image_mask=mask, **text)
    # what sits at a given frame of x is never read: the given frame replaces it...
    x_junk = jnp.where(mask[:, :, None, None, None] > 0, 5.0, x)
    np.testing.assert_allclose(model(x_junk, t, image=image, image_mask=mask, **text), out, atol=1e-5)
    # ...and the same call made by hand (frame replaced, t = 0 there) through the DiT path
    by_hand = jnp.where(mask[:, :, None, None, None] > 0, image, x)
    t_frames = jnp.where(mask > 0, 0.0, t[:, None])
    model.clean = ()
    np.testing.assert_allclose(model(by_hand, t_frames, image=image, image_mask=mask, **text), out,
                               atol=1e-5)
    # a dropped image (mask all zero) replaces nothing
    dropped = dict(image=image * 0, image_mask=jnp.zeros_like(mask), **text)
    plain = model(x, t, **dropped)
    model.clean = (("image", "image_mask"),)
    np.testing.assert_allclose(model(x, t, **dropped), plain, atol=1e-5)


def test_loss_skips_the_clean_frames():
    """The trainer's loss equals the diffusion loss masked to the frames that were not given."""
    config = i2v_config()
    config.conditions.image.dropout = 0.0
    graphdef, params = split_model(build_model(config, nnx.Rngs(0)))
    model = live(graphdef, params)
    params = nnx.split(model)[1]
    T, H, W, C = video_shape(config)
    rng = np.random.default_rng(0)
    L = config.data.text_max_len
    batch = {"video": rng.uniform(-1, 1, (4, T, H, W, C)).astype(np.float32),
             "text_ids": rng.integers(3, 200, (4, L)).astype(np.int32), "text_mask": np.ones((4, L), bool)}
    key = jax.random.key(3)
    loss, _ = make_loss_and_grads(graphdef, config)(params, batch, key)

    # The same randomness, by hand: first frame given (anchors first=1.0), loss over the rest.
    k_drop, k_loss, k_build = jax.random.split(key, 3)
    names = conditioning.enabled(config.conditions)
    inputs = conditioning.training_inputs(batch, names, k_build, {n: config.conditions[n].to_dict() for n in names})
    rates = {n: float(config.conditions[n].dropout) for n in names}
    inputs, _ = conditioning.training_dropout(inputs, names, rates, 0.0, k_drop)
    np.testing.assert_array_equal(np.asarray(inputs["image_mask"])[:, 0], 1.0)
    d = config.diffusion
    noise = draw_noise(k_loss, batch["video"], time_kind=d.time_sampling, time_mean=d.time_mean,
                       time_std=d.time_std, time_shift=d.time_shift)
    mask = np.ones((4, T, 1, 1, 1), np.float32)
    mask[:, 0] = 0.0

    @jax.jit  # one compiled program: op by op, the model's forward dispatches slowly
    def by_hand(mask):
        loss, _ = diffusion_loss(lambda x, t: model(x, t, **inputs), batch["video"], None,
                                 process=get_process(d.process), prediction=d.prediction, noise=noise,
                                 mask=mask)
        return loss.mean()

    np.testing.assert_allclose(float(loss), float(by_hand(mask)), rtol=1e-5)
    assert abs(float(by_hand(np.ones_like(mask))) - float(loss)) > 1e-4  # all frames: not the same


def test_clean_image_trains_and_its_frames_are_held_unclamped():
    config = i2v_config()
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    with sharding.use_mesh(mesh):
        graphdef, state, _ = create_state(config, mesh)
    tx, _ = make_optimizer(config)
    T, H, W, C = video_shape(config)
    rng = np.random.default_rng(0)
    L = config.data.text_max_len
    batch = {"video": rng.uniform(-1, 1, (4, T, H, W, C)).astype(np.float32),
             "text_ids": rng.integers(3, 200, (4, L)).astype(np.int32), "text_mask": np.ones((4, L), bool)}
    with sharding.use_mesh(mesh):
        new, metrics = jax.jit(make_train_step(graphdef, tx, config))(state, batch, jax.random.key(0))
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    gen = Generator(config, graphdef, new.params, mesh)
    image = rng.integers(0, 256, (2, H, W, 3), dtype=np.uint8)
    out = gen.generate(["a red circle moves left"], num=2, image=image, steps=3, clamp=False)
    np.testing.assert_array_equal(out[:, 0], image)
    # without `clean`, an unclamped sample only follows the image (here: an untrained model)
    plain = Generator(i2v_config(clean=False), graphdef, new.params, mesh)
    assert not np.array_equal(plain.generate(["x"], num=2, image=image, steps=3, clamp=False)[:, 0], image)


def test_clean_needs_a_frame_condition():
    conditions = {"image": {"enabled": True, "clean": True}, "source_video": {"enabled": True, "clean": True}}
    assert conditioning.clean_groups(conditions, ["image"]) == (("image", "image_mask"),)
    with pytest.raises(ValueError, match="source_video.clean"):
        conditioning.clean_groups(conditions, ["source_video", "image"])


def test_clean_frames_in_tubelets_warn():
    c = i2v_config()
    c.model.patch_size = (2, 4, 4)
    with pytest.warns(UserWarning, match=r"patch_size\[0\]=2"):
        build_model(c, nnx.Rngs(0))
    c.model.patch_size = (1, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model(c, nnx.Rngs(0))
