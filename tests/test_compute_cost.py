"""FLOPs, memory and time of a config from XLA's analyses (tools/measure.py)."""
import pytest

from configs import shapes_t2v
from vdm import compute_cost


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    c = shapes_t2v.get_config("smoke")
    c.data.data_dir = str(tmp_path_factory.mktemp("data"))
    return c


def test_sampling_flops_count_guidance_and_steps(config):
    guided = compute_cost.sampling_cost(config, num=2, repeats=1, steps=3)
    assert guided["guided"] == "text" and guided["setup"] == "text*"
    assert guided["flops_per_clip"] == pytest.approx(3 * guided["model_call_flops"])
    assert guided["sample_s_per_clip"] > 0
    config.conditions.text.guidance = 1.0
    plain = compute_cost.sampling_cost(config, num=2, repeats=1, steps=3)
    config.conditions.text.guidance = 3.0
    assert plain["setup"] == "text"
    # Guidance batches the unconditional variant with the conditional one: twice the work.
    assert guided["model_call_flops"] == pytest.approx(2 * plain["model_call_flops"], rel=0.05)


def test_train_step_cost(config):
    out = compute_cost.train_cost(config, steps=1, warmup=0)
    assert out["params"] > 1000 and out["clip"] == "4x16x16x3"
    assert out["train_step_flops"] > 0 and out["train_step_s"] > 0
    # The step needs at least its parameters, optimizer state and batch in memory.
    assert out["train_peak_bytes"] > 3 * 4 * out["params"]
