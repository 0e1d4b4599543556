import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm import conditioning
from vdm.models.text import tokenize


def text_inputs(prompts, max_len=16):
    ids, mask = tokenize(prompts, max_len)
    return {"text_ids": jnp.asarray(ids), "text_mask": jnp.asarray(mask)}


def test_drop_replaces_with_the_empty_prompt_per_example():
    inputs = text_inputs(["a red circle", "a blue square"])
    empty = text_inputs(["", ""])
    out = conditioning.drop(inputs, ["text"], jnp.array([True, False]))
    np.testing.assert_array_equal(out["text_ids"][0], empty["text_ids"][0])
    np.testing.assert_array_equal(out["text_ids"][1], inputs["text_ids"][1])
    np.testing.assert_array_equal(out["text_mask"][0], empty["text_mask"][0])


def test_training_dropout_rates():
    inputs = text_inputs(["a red circle"] * 4000)
    _, dropped = conditioning.training_dropout(inputs, ["text"], {"text": 0.1}, 0.0, jax.random.key(0))
    assert abs(float(dropped["text"].mean()) - 0.1) < 0.02
    _, dropped = conditioning.training_dropout(inputs, ["text"], {"text": 0.0}, 0.3, jax.random.key(1))
    assert abs(float(dropped["text"].mean()) - 0.3) < 0.03


def fake_model(x, t, *, text_ids, text_mask):
    # Output depends on the prompt through the sum of its ids.
    return x * 0 + (text_ids * text_mask).sum(-1).astype(x.dtype)[:, None] / 100.0


def test_guidance_scale_one_is_one_plain_call():
    calls = []

    def model(x, t, **kw):
        calls.append(x.shape[0])
        return fake_model(x, t, **kw)

    inputs = text_inputs(["a red circle", "a cat"])
    x = jnp.zeros((2, 3))
    fn = conditioning.guided(model, inputs, ["text"], {"text": 1.0})
    np.testing.assert_allclose(fn(x, jnp.zeros(2)), fake_model(x, None, **inputs))
    assert calls == [2]


def test_guidance_is_batched_cfg():
    calls = []

    def model(x, t, **kw):
        calls.append(x.shape[0])
        return fake_model(x, t, **kw)

    inputs = text_inputs(["a red circle", "a cat"])
    x = jnp.zeros((2, 3))
    out = conditioning.guided(model, inputs, ["text"], {"text": 4.0})(x, jnp.zeros(2))
    cond = fake_model(x, None, **inputs)
    uncond = fake_model(x, None, **conditioning.drop(inputs, ["text"]))
    np.testing.assert_allclose(out, uncond + 4.0 * (cond - uncond), rtol=1e-6)
    assert calls == [4]  # cond and uncond in one call


def test_guidance_interval_guides_only_inside_it():
    calls = []

    def model(x, t, **kw):
        calls.append(x.shape[0])
        return fake_model(x, t, **kw)

    inputs = text_inputs(["a red circle", "a cat", "a blue square"])
    x = jnp.zeros((3, 3))
    t = jnp.array([0.1, 0.5, 0.9])  # below, at the edge of, inside [0.5, 1]
    out = conditioning.guided(model, inputs, ["text"], {"text": 4.0}, interval=(0.5, 1.0))(x, t)
    cond = fake_model(x, None, **inputs)
    uncond = fake_model(x, None, **conditioning.drop(inputs, ["text"]))
    want = np.where(np.array([False, True, True])[:, None], uncond + 4.0 * (cond - uncond), cond)
    np.testing.assert_allclose(out, want, rtol=1e-6)
    assert calls == [6]  # still one batched call
    # A scale of 0 is the unconditional output inside; outside, the conditional one is
    # still computed and used.
    out = conditioning.guided(model, inputs, ["text"], {"text": 0.0}, interval=(0.5, 1.0))(x, t)
    np.testing.assert_allclose(out, np.where(np.array([False, True, True])[:, None], uncond, cond), rtol=1e-6)


def test_guidance_interval_nested_conditions():
    """Two guided conditions: inside the interval the nested combination, outside the output
    with both on."""
    def model(x, t, *, text_ids, text_mask, image, image_mask):
        return fake_model(x, t, text_ids=text_ids, text_mask=text_mask) + image.sum((1, 2, 3, 4))[:, None]

    inputs = {**text_inputs(["a red circle", "a cat"]),
              "image": jnp.array([1.0, 3.0]).reshape(2, 1, 1, 1, 1), "image_mask": jnp.ones((2, 1))}
    x, t = jnp.zeros((2, 1)), jnp.array([0.2, 0.8])
    names, scales = ["image", "text"], {"image": 2.0, "text": 3.0}
    none = model(x, t, **conditioning.drop(inputs, names))
    image = model(x, t, **conditioning.drop(inputs, ["text"]))
    both = model(x, t, **inputs)
    out = conditioning.guided(model, inputs, names, scales, interval=(0.5, 1.0))(x, t)
    inside = none + 2.0 * (image - none) + 3.0 * (both - image)
    assert not np.allclose(inside, both)
    np.testing.assert_allclose(out, np.where(np.array([False, True])[:, None], inside, both), rtol=1e-6)


@pytest.mark.parametrize("interval", [(0.5, 0.5), (0.6, 0.2), (-0.1, 1.0), (0.0, 1.5), (0.3,), "0.3"])
def test_bad_guidance_interval_names_the_problem(interval):
    with pytest.raises(ValueError, match="guidance interval"):
        conditioning.check_interval(interval)


def test_parse_guidance():
    d = {"text": 3.0}
    assert conditioning.parse_guidance(None, ["text"], d) == {"text": 3.0}
    assert conditioning.parse_guidance("5", ["text"], d) == {"text": 5.0}
    assert conditioning.parse_guidance("text=2.5", ["text"], d) == {"text": 2.5}
    with pytest.raises(ValueError, match="'source_video'.*conditions are \\['text'\\]"):
        conditioning.parse_guidance("source=2", ["text"], d)
    both = {"source_video": 1.5, "text": 3.0}
    assert conditioning.parse_guidance("source=2,text=5", list(both), both) == {"source_video": 2.0, "text": 5.0}
    with pytest.raises(ValueError, match="'colour'"):
        conditioning.parse_guidance("colour=2", ["text"], d)


def test_unknown_condition_named():
    with pytest.raises(ValueError, match="unknown condition"):
        conditioning.enabled({"txt": {"enabled": True}})
    with pytest.raises(KeyError, match="text_ids"):
        conditioning.select({"video": 0}, ["text"])
