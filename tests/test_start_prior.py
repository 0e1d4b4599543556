"""The first frame's direction posterior against an empirical one from the renderer itself."""
import dataclasses

import ml_collections
import numpy as np
import pytest

from vdm.data import moving_shapes
from vdm.data.shapes_render import DIRECTION_NAMES, _sample_objects, sprite_centroid
from vdm.evaluation import start_prior
from vdm.evaluation.runner import direction_chance


def _empirical_chance(scene, n: int, seed: int = 0) -> float:
    """Mean over sampled objects of the frequency of their direction among all samples with the
    same start corner, size and speed: P(direction | start) counted, not derived."""
    o = _sample_objects(np.random.default_rng(seed), scene, n)
    key = np.stack([o["corners"][:, 0, 0], o["corners"][:, 0, 1], o["size"],
                    np.round(o["speed"] * 10).astype(np.int64)], 1)  # [n, 4]
    _, group = np.unique(key, axis=0, return_inverse=True)
    group = group.reshape(-1)
    counts = np.zeros((group.max() + 1, len(DIRECTION_NAMES)))
    np.add.at(counts, (group, o["direction"]), 1.0)
    return float((counts[group, o["direction"]] / counts[group].sum(1)).mean())


def _truth(scene, n: int, seed: int = 1) -> dict:
    o = _sample_objects(np.random.default_rng(seed), scene, n)
    centroid = np.stack([sprite_centroid(int(s), z) for s, z in zip(o["shape"], o["size"])])  # [n, 2]
    return {"num_objects": np.ones(n, np.int64), "shape": o["shape"][:, None], "size": o["size"][:, None],
            "direction": o["direction"][:, None], "speed": o["speed"][:, None],
            "positions": (o["corners"] + centroid[:, None, :])[:, None]}  # [n, 1, T, 2]


@pytest.mark.parametrize("name", ["quickstart", "t2v_32"])
def test_posterior_matches_the_renderers_own_frequencies(name):
    scene = moving_shapes.CONFIGS[name].scene
    derived = start_prior.direction_chance_given_start(_truth(scene, 4000), scene)
    counted = _empirical_chance(scene, 400_000)
    assert abs(derived - counted) < 0.02, (derived, counted)
    assert derived > 2 / len(DIRECTION_NAMES)  # the start says a lot: far above 1/8


def test_an_object_at_the_left_edge_is_not_moving_left():
    scene = moving_shapes.CONFIGS["quickstart"].scene  # 16x16, 8 frames, 1 px/frame
    post = dict(zip(scene.directions, start_prior.start_posterior(np.array([5, 0]), 5, 1.0, scene)))
    assert post["left"] == 0.0 and post["up-left"] == 0.0 and post["down-left"] == 0.0
    assert post["right"] > 0.0 and abs(sum(post.values()) - 1.0) < 1e-12


def test_with_bounce_the_start_says_nothing():
    scene = dataclasses.replace(moving_shapes.CONFIGS["quickstart"].scene, bounce=True)
    truth = _truth(moving_shapes.CONFIGS["quickstart"].scene, 50)
    assert start_prior.direction_chance_given_start(truth, scene) == pytest.approx(1 / 8)


def test_a_start_the_scene_cannot_give_is_refused():
    scene = moving_shapes.CONFIGS["quickstart"].scene
    with pytest.raises(ValueError, match="is this the scene the clips came from"):
        start_prior.start_posterior(np.array([40, 40]), 5, 1.0, scene)


def test_evaluator_levels_per_task():
    scene = moving_shapes.CONFIGS["quickstart"].scene
    config = ml_collections.ConfigDict({"data": {"config": "quickstart", "frame_stride": 1}})
    truth = _truth(scene, 200)
    i2v = direction_chance("i2v", config, truth, 8)["direction_chance"]
    assert i2v == pytest.approx(start_prior.direction_chance_given_start(truth, scene))
    # At frame stride 2 the evaluator's speeds are per model frame (doubled): the same level.
    config.data.frame_stride = 2
    strided = dict(truth, speed=truth["speed"] * 2)
    assert direction_chance("i2v", config, strided, 4)["direction_chance"] == pytest.approx(i2v)
    assert direction_chance("interpolate", config, truth, 8) == {"direction_chance": 1.0}
    assert direction_chance("predict", config, truth, 8) == {"direction_chance": 1.0}
    assert direction_chance("t2v", config, truth, 8) == {}
