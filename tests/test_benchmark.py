"""The benchmark measures what it says: every mode reports, the Python-loop sampler
produces the scanned sampler's clips, and a comparison divides the right numbers."""
import pytest

from configs import shapes_t2v
from vdm.benchmark import benchmark, compare


def test_every_mode_and_the_python_loop_sampler():
    config = shapes_t2v.get_config("smoke")  # batch 8 over the 8 test devices
    config.train.peak_flops = 1e12
    config.sample.sampler = "euler"
    out = benchmark(config, modes=("forward", "sample"), steps=1, warmup=0, sample_repeats=1,
                    sample_num=8, sample_steps=3, python_loop=True)
    assert out["params"] > 0 and out["peak_source"] == "config"
    for key in ("forward_s", "sample_s", "forward_compiled_peak_bytes"):
        assert out[key] > 0, key
    assert out["forward_mfu"] == pytest.approx(out["forward_flops"] / out["forward_s"] / 1e12, rel=1e-3)
    assert out["guidance_variants"] == 2  # text guidance 3.0: cond + uncond per call
    assert out["sample_flops"] == pytest.approx(8 * 3 * 2 * out["forward_flops"] / config.train.batch_size)
    # driving the same Euler steps from Python gives the same clips
    assert out["python_loop_max_abs_diff"] <= 1

    # train mode, with the clip-length override reaching the model and the counts
    longer = benchmark(config, modes=("train",), steps=1, warmup=0, frames=8)
    assert longer["clip"][0] == 8 and longer["tokens_per_clip"] == 2 * out["tokens_per_clip"]
    assert longer["train_step_s"] > 0 and longer["compiled_peak_bytes"] > 0
    ratios = compare(out, longer)["b_over_a"]
    assert ratios["tokens_per_clip"] == 2.0 and "scan_layers" not in ratios
    with pytest.raises(ValueError, match="unknown benchmark modes"):
        benchmark(config, modes=("train", "infer"))


def test_dot_floor_reports_the_steps_dots_and_the_bound_they_set():
    config = shapes_t2v.get_config("smoke")
    config.train.peak_flops = 1e12
    out = benchmark(config, modes=("train",), steps=1, warmup=0, dot_floor=True)
    floor = out["train_dot_floor"]
    # the traced dots are the analytic count's matmuls, all of them
    assert floor["dot_flops"] == pytest.approx(out["train_step_flops"], rel=1e-9)
    assert floor["dot_floor_s"] > 0 and floor["distinct_dots"] >= len(floor["top_dots"]) > 0
    assert out["train_dot_floor_mfu_bound"] == pytest.approx(
        out["train_step_flops"] / floor["dot_floor_s"] / 1e12, abs=1e-4)  # rounded to 4 places
