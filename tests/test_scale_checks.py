"""Impossible mesh and batch combinations are named, with their numbers, before anything compiles."""
import os

import jax
import pytest

from configs import shapes_t2v
from vdm.train.loop import train


def smoke(tmp_path, mesh, **train_overrides):
    c = shapes_t2v.get_config("smoke")   # batch 8, 2 heads, 4 frames in tubelets of 2: 2 latent frames
    c.data.data_dir = str(tmp_path / "data")
    c.mesh.update(dict(dict(data=1, fsdp=1, sequence=1, tensor=1), **mesh))
    c.train.update(train_overrides)
    return c


@pytest.mark.parametrize("mesh, overrides, message", [
    ({"data": 3}, {}, r"has 3 devices but 8 are available"),
    ({"data": 2, "fsdp": 4}, {"batch_size": 12}, r"batch_size=12 must be a positive multiple of data\*fsdp=2\*4=8"),
    ({"data": 8}, {"grad_accum_steps": 2}, r"batch_size=8 in train.grad_accum_steps=2 micro-batches .* data\*fsdp=8"),
    ({"data": 2, "tensor": 4}, {}, r"model.num_heads=2 is not divisible by mesh tensor=4"),
    ({"data": 2, "sequence": 4}, {}, r"num_frames=4 / patch 2 = 2 latent frames, not divisible by mesh sequence=4"),
])
def test_bad_mesh_or_batch_is_named_before_compiling(tmp_path, mesh, overrides, message):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train(smoke(tmp_path, mesh, **overrides), str(workdir))
    # Nothing was set up: no workdir, no dataset, so nothing was compiled either.
    assert not os.path.exists(workdir) and not os.path.exists(tmp_path / "data")


def test_mesh_size_must_match_the_given_devices(tmp_path):
    with pytest.raises(ValueError, match=r"has 8 devices but 4 are available"):
        train(smoke(tmp_path, {"data": 8}), str(tmp_path / "run"), devices=jax.devices()[:4])
