"""Condition inputs from files (fitted to the model) and the sampling CLI's condition flags."""
import importlib.util
import os

import imageio.v2 as imageio
import numpy as np
import pytest

from configs import shapes_multitask
from vdm import condition_inputs
from vdm.train.loop import train

SHAPE = (4, 16, 16, 3)  # the smoke models' clips (T, H, W, C)


def test_fit_frames_crops_to_aspect_then_resizes_with_a_warning():
    frames = np.zeros((2, 20, 40, 3), np.uint8)
    frames[:, :, 10:30] = 200  # the centre 20x20 window is all 200
    with pytest.warns(UserWarning, match="20x40 frames cropped to 20x20 and resized to the model's 16x16"):
        out = condition_inputs.fit_frames(frames, 16, 16, "clip.mp4")
    assert out.shape == (2, 16, 16, 3) and (out == 200).all()
    same = np.ones((1, 16, 16, 3), np.uint8)
    assert condition_inputs.fit_frames(same, 16, 16, "x") is same  # nothing to do, no warning


def test_parse_arguments():
    assert condition_inputs.parse_image_arg("a.png") == ("a.png", 0)
    assert condition_inputs.parse_image_arg("dir@x/a.png@-1") == ("dir@x/a.png", -1)
    assert condition_inputs.parse_frames_arg("c.mp4:3") == ("c.mp4", 3)
    with pytest.raises(ValueError, match="VIDEO:k"):
        condition_inputs.parse_frames_arg("c.mp4")
    with pytest.raises(ValueError, match="frame index"):
        condition_inputs.parse_image_arg("a.png@last")


def test_loaders_name_the_problem(tmp_path):
    png = str(tmp_path / "a.png")
    imageio.imwrite(png, np.full((16, 16, 3), 255, np.uint8))
    image, at = condition_inputs.load_images([png + "@-1"], SHAPE)
    assert image.shape == (1, 1, 16, 16, 3) and at == [-1]
    with pytest.raises(ValueError, match="outside the model's 4 frames"):
        condition_inputs.load_images([png + "@4"], SHAPE)
    gif = str(tmp_path / "short.gif")
    imageio.mimwrite(gif, np.stack([np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 90, np.uint8)]))
    with pytest.raises(ValueError, match="2 frames; the model makes 4-frame clips"):
        condition_inputs.load_source(gif, SHAPE)
    with pytest.raises(ValueError, match="k=3"):
        condition_inputs.load_clip_prefix(gif + ":3", SHAPE)
    assert condition_inputs.load_clip_prefix(gif + ":2", SHAPE).shape == (1, 2, 16, 16, 3)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png"):
        condition_inputs.load_images([str(broken)], SHAPE)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        condition_inputs.load_source(str(tmp_path / "missing.mp4"), SHAPE)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    c = shapes_multitask.get_config("smoke")
    c.data.data_dir = str(root / "data")
    train(c, str(root / "run"), stop_after=1)  # a checkpoint is all the CLI needs: no evaluation
    tools = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
    import sys

    sys.path.insert(0, tools)
    spec = importlib.util.spec_from_file_location("sample_cli", os.path.join(tools, "sample.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, str(root / "run"), root


def test_sample_cli_condition_flags(cli):
    mod, run, root = cli
    png = str(root / "anchor.png")
    anchor = np.zeros((32, 32, 3), np.uint8)
    anchor[4:12, 4:12] = (255, 0, 0)
    imageio.imwrite(png, anchor)
    clip = str(root / "clip.gif")
    imageio.mimwrite(clip, np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    common = ["--workdir", run, "--prompt", "a red square moves left", "--num", "2", "--steps", "2"]
    out = str(root / "i2v.mp4")
    with pytest.warns(UserWarning, match="resized"):
        assert mod.main(common + ["--image", png, "--out", out]) == 0
    first = imageio.mimread(out[:-4] + ".gif")[0]  # clamped: frame 0 is the (resized) anchor
    assert first.shape[0] > 16
    assert mod.main(common + ["--frames", clip + ":2", "--out", str(root / "cont.mp4")]) == 0
    assert mod.main(common + ["--source", clip, "--guidance", "text=2,source=1.5",
                              "--out", str(root / "edit.mp4")]) == 0
    assert mod.main(common + ["--source", clip, "--strength", "0.5", "--out", str(root / "sde.mp4")]) == 0
    for name in ("i2v", "cont", "edit", "sde"):
        assert os.path.getsize(root / f"{name}.mp4") > 0
    # Bad input: exit 2 with nothing written.
    bad = str(root / "bad.mp4")
    assert mod.main(common + ["--frames", clip + ":9", "--out", bad]) == 2
    assert mod.main(common + ["--source", str(root / "nope.mp4"), "--out", bad]) == 2
    assert mod.main(common + ["--strength", "0.5", "--out", bad]) == 2
    assert mod.main(common + ["--guidance", "colour=2", "--out", bad]) == 2
    assert not os.path.exists(bad)
