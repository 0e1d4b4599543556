import jax
import pytest

from configs import shapes_t2v
from vdm import sharding
from vdm.data import moving_shapes
from vdm.evaluation import restoration
from vdm.sampling import Generator
from vdm.train.state import create_state


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    config = shapes_t2v.get_config("smoke")
    # The tests below read an untrained model's zero output as zero velocity.
    config.update_from_flattened_dict(shapes_t2v.FLOW_TARGET)
    config.data.data_dir = str(tmp_path_factory.mktemp("data"))
    moving_shapes.build(config.data.config, config.data.data_dir)
    mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    graphdef, state, _ = create_state(config, mesh)
    return Generator(config, graphdef, state.params, mesh)


def test_restoration_runs_from_true_clips_to_pure_noise(generator):
    # At initialisation adaLN-Zero closes every gate: the model predicts zero velocity, so
    # the sampler returns its start x_t unchanged. From t = 0.02 that is the true clip
    # with 2% noise (every score ~1); from t = 1 it is pure noise (no object found).
    scores = restoration.restoration_scores(generator, strengths=(0.02, 1.0), num=8, batch_size=4)
    assert set(scores) == {f"restore/{k}@{t}" for k in restoration.SCORES for t in ("0.02", "1")}
    for k in ("shape_adherence", "color_adherence", "direction_adherence"):
        assert scores[f"restore/{k}@0.02"] >= 0.95, (k, scores)
    assert scores["restore/shape_adherence@1"] < 0.2, scores
    assert scores["restore/color_adherence@1"] < 0.2, scores


def test_restoration_rejects_bad_levels_before_sampling(generator):
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        restoration.restoration_scores(generator, strengths=(0.0, 0.5), num=2)
