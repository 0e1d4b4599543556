import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import shapes_t2v
from vdm import sharding
from vdm.data import moving_shapes
from vdm.diffusion import get_process, target
from vdm.evaluation import probes
from vdm.models.text import tokenize
from vdm.train.state import create_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _opened_model(tmp_path, *, image: bool):
    """The smoke model (with the image condition or not) and its weights plus noise, so that
    adaLN-Zero's gates are open and every input changes the output."""
    config = shapes_t2v.get_config("smoke")
    config.data.data_dir = str(tmp_path)
    config.conditions.image.enabled = image
    moving_shapes.build(config.data.config, config.data.data_dir)
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    graphdef, state, _ = create_state(config, mesh)
    params = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(1), x.shape), state.params)
    return config, graphdef, params


def test_opposite_caption_swaps_every_direction_word():
    assert probes.opposite_caption("a red circle moves up-left") == "a red circle moves down-right"
    assert probes.opposite_caption("a small blue square moves right quickly and a green triangle moves down") \
        == "a small blue square moves left quickly and a green triangle moves up"
    assert probes.opposite_caption("an upright red circle") == "an upright red circle"  # whole words only


def test_probes_on_a_model_that_reads_direction(tmp_path):
    config = shapes_t2v.get_config("smoke")
    config.data.data_dir = str(tmp_path)
    moving_shapes.build(config.data.config, config.data.data_dir)
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    graphdef, state, _ = create_state(config, mesh)
    # At initialisation adaLN-Zero closes every gate: the output ignores the caption.
    gaps = probes.direction_swap_loss(graphdef, state.params, config, num=8, times=(0.5,))
    assert gaps["swap_gap@0.5"] == 0.0
    # Open the gates with random weights: now captions (and frame order) change the output.
    params = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(1), x.shape), state.params)
    gaps = probes.direction_swap_loss(graphdef, params, config, num=8, times=(0.5,))
    assert gaps["loss_true@0.5"] != gaps["loss_swapped@0.5"]
    assert probes.frame_reversal_change(graphdef, params, config, num=8) > 1e-3


def test_probes_give_other_conditions_as_dropped(tmp_path):
    # A model with an image condition too: the probes ask about text and frames alone, so the
    # image enters as its null input (it used to be missing: the model refused the call).
    config, graphdef, params = _opened_model(tmp_path, image=True)
    gaps = probes.direction_swap_loss(graphdef, params, config, num=4, times=(0.5,))
    assert gaps["loss_true@0.5"] != gaps["loss_swapped@0.5"]
    assert probes.frame_reversal_change(graphdef, params, config, num=4) > 1e-3


def test_swap_loss_given_the_first_frame_is_over_the_other_frames(tmp_path):
    # The image condition holds each clip's first frame and the loss skips that frame: the
    # probe's figure equals a direct masked computation of the same loss.
    config, graphdef, params = _opened_model(tmp_path, image=True)
    gaps = probes.direction_swap_loss(graphdef, params, config, num=4, times=(0.5,), given_first_frame=True)
    plain = probes.direction_swap_loss(graphdef, params, config, num=4, times=(0.5,))
    assert gaps["loss_true@0.5"] != plain["loss_true@0.5"]

    video, captions = probes._test_batch(config, 4)
    x0 = jnp.asarray(video)
    eps = jax.random.normal(jax.random.key(0), x0.shape)
    ids, mask = tokenize(captions, config.data.text_max_len)
    first = np.zeros(x0.shape[:2], np.float32)
    first[:, 0] = 1.0
    process = get_process(config.diffusion.process)
    x_t = process.alpha(0.5) * x0 + process.sigma(0.5) * eps
    t = jnp.full((4,), 0.5)
    out = nnx.merge(graphdef, params)(x_t, t, text_ids=ids, text_mask=mask,
                                      image=x0 * first[:, :, None, None, None], image_mask=jnp.asarray(first))
    want = jnp.mean((out - target(process, config.diffusion.prediction, x0, eps, t))[:, 1:] ** 2)
    np.testing.assert_allclose(gaps["loss_true@0.5"], float(want), rtol=1e-5)


def test_swap_loss_given_the_first_frame_needs_the_image_condition(tmp_path):
    config, graphdef, params = _opened_model(tmp_path, image=False)
    with pytest.raises(ValueError, match="'image' condition"):
        probes.direction_swap_loss(graphdef, params, config, num=4, times=(0.5,), given_first_frame=True)


def test_swap_loss_at_pure_noise_still_sees_the_caption(tmp_path):
    # t = 1: the input is all noise, so only the caption (and frame index) can shape the output.
    config, graphdef, params = _opened_model(tmp_path, image=False)
    gaps = probes.direction_swap_loss(graphdef, params, config, num=4, times=(1.0,))
    assert np.isfinite(gaps["loss_true@1.0"]) and gaps["loss_true@1.0"] != gaps["loss_swapped@1.0"]


@pytest.mark.parametrize("times", ["1.5", "0.5,x", ","])
def test_probe_tool_names_bad_noise_levels(times, tmp_path):
    # Refused before any checkpoint is looked for (the workdir does not exist).
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "probe.py"), "--workdir",
                          str(tmp_path / "none"), "--times", times], capture_output=True, text=True)
    assert run.returncode == 2 and "--times" in run.stderr, run.stderr
