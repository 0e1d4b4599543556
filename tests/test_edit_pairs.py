"""Edit pairs of moving_shapes, and the task metrics that score conditioned generation."""
import numpy as np
import pytest

from vdm.data import moving_shapes, pipeline
from vdm.data.shapes_render import (
    BACKGROUNDS, COLOR_NAMES, EDIT_KINDS, SHAPES, SceneParams, generate_edit_example)
from vdm.evaluation import tasks
from vdm.evaluation.runner import eval_clips
from configs import shapes_edit

PARAMS = SceneParams(num_frames=8, height=16, width=16, backgrounds=BACKGROUNDS,
                     caption_factors=("color", "shape", "direction", "background"))


def test_edit_pairs_keep_trajectories_and_apply_the_instruction():
    kinds = set()
    for seed in range(60):
        e = generate_edit_example(PARAMS, seed)
        kind = EDIT_KINDS[int(e["edit_kind"])]
        kinds.add(kind)
        n = int(e["num_objects"])
        for k in ("direction", "speed", "size"):
            np.testing.assert_array_equal(e[k], e[f"source_{k}"])
        moved = np.abs(e["positions"][:n] - e["source_positions"][:n]).max()
        if kind == "color":
            (j,) = np.flatnonzero(e["color"][:n] != e["source_color"][:n])
            assert e["instruction"] == f"make the {SHAPES[e['shape'][j]]} {COLOR_NAMES[e['color'][j]]}"
            assert moved == 0
            changed = (e["video"] != e["source_video"]).any(-1)
            assert changed.any() and (e["background"] == e["source_background"])
        elif kind == "shape":
            (j,) = np.flatnonzero(e["shape"][:n] != e["source_shape"][:n])
            assert e["instruction"] == (f"turn the {SHAPES[e['source_shape'][j]]} into a "
                                        f"{SHAPES[e['shape'][j]]}")
            assert moved < 1.0  # the new sprite's centroid offset, not a new path
        else:
            assert e["background"] != e["source_background"] and moved == 0
            assert e["instruction"].startswith("change the background to")
        assert e["caption"] != e["source_caption"]
    assert kinds == set(EDIT_KINDS)


def test_edit_pairs_reach_the_batch(tmp_path):
    source = pipeline.make_source("edit_smoke", tmp_path, "train")
    ds = pipeline.make_dataset(source, batch_size=4, num_frames=3, seed=0, text_max_len=32,
                               tokenize_fn=lambda s, n: (np.frombuffer(s.encode()[:n].ljust(n), np.uint8)
                                                         .astype(np.int32), np.ones(n, bool)),
                               text_key="instruction")
    batch = next(iter(ds))
    assert batch["source_video"].shape == batch["video"].shape == (4, 3, 16, 16, 3)
    assert batch["source_video"].min() >= -1 and batch["source_video"].max() <= 1
    assert batch["source_positions"].shape == (4, 3, 3, 2)
    text = bytes(batch["text_ids"][0].astype(np.uint8)).decode().strip()
    assert text == batch["instruction"][0][:32]
    with pytest.raises(KeyError, match="text_key 'instr'"):
        next(iter(pipeline.make_dataset(source, batch_size=4, num_frames=3, tokenize_fn=lambda s, n: (0, 0),
                                        text_key="instr")))


@pytest.fixture(scope="module")
def test_clips(tmp_path_factory):
    c = shapes_edit.get_config("smoke")
    c.data.data_dir = str(tmp_path_factory.mktemp("data"))
    c.data.config = "edit_16"
    c.data.num_frames = 8
    return eval_clips(c, 64)


@pytest.mark.parametrize("task", ["i2v", "predict", "interpolate", "edit"])
def test_task_metrics_are_perfect_on_true_clips(test_clips, task):
    _, truth, clips = test_clips
    m = tasks.task_metrics(task, clips["video"], clips, truth)
    assert m["identity_consistency"] == 1.0
    if task == "i2v":
        assert m["anchor_kept"] == 1.0 and m["anchor_psnr"] == np.inf
    elif task == "edit":
        assert m["edit_applied"] == 1.0 and m["trajectory_error"] < 0.2
        assert {k: v for k, v in m.items() if k.startswith("edit_applied/")} == {
            f"edit_applied/{k}": 1.0 for k in EDIT_KINDS}
    else:
        assert m["continuation_error"] < 1e-5 and m["ssim"] == pytest.approx(1.0)


def test_task_metrics_fail_on_wrong_clips(test_clips):
    _, truth, clips = test_clips
    # The unedited source is not the edit: the edit is not applied.
    m = tasks.task_metrics("edit", clips["source_video"], clips, truth)
    assert m["edit_applied"] < 0.1
    # Only the recolour edits made: each kind scored on its own clips.
    kind = np.asarray(truth["edit_kind"]).reshape(-1)
    recolour = kind == EDIT_KINDS.index("color")
    assert 0 < recolour.sum() < len(kind)
    mixed = np.where(recolour[:, None, None, None, None], clips["video"], clips["source_video"])
    m = tasks.task_metrics("edit", mixed, clips, truth)
    assert m["edit_applied/color"] == 1.0
    assert m["edit_applied/shape"] < 0.1 and m["edit_applied/background"] < 0.1
    assert m["edit_applied"] == pytest.approx(recolour.mean(), abs=0.1)
    # Another clip's continuation: wrong positions and pixels.
    shuffled = np.roll(clips["video"], 1, axis=0)
    m = tasks.task_metrics("predict", shuffled, clips, truth)
    assert m["continuation_error"] > 3.0 and m["ssim"] < 0.9
    # Noise keeps no anchor.
    noise = np.random.default_rng(0).integers(0, 256, clips["video"].shape, dtype=np.uint8)
    m = tasks.task_metrics("i2v", noise, clips, truth)
    assert m["anchor_kept"] < 0.2 and m["anchor_psnr"] < 12


def test_background_classifier_on_true_clips(test_clips):
    _, truth, clips = test_clips
    np.testing.assert_array_equal(tasks.classify_background(clips["video"]), truth["background"])
    np.testing.assert_array_equal(tasks.classify_background(clips["source_video"]), truth["source_background"])


def test_background_classifier_reads_drawn_backgrounds(test_clips):
    """Samples are drawn with a little noise: true gradients and textures under a static grain
    of std 3 (a model's) keep their class, and a flat grey field under the same grain is no
    background of the dataset (-1), not a gradient."""
    _, truth, clips = test_clips
    rng = np.random.default_rng(0)
    video = clips["video"].astype(np.float64)
    N, T, H, W, _ = video.shape
    grain = rng.normal(0, 3, (N, 1, H, W, 1))  # static, as a drawn background's grain is
    noisy = np.clip(video + grain, 0, 255).astype(np.uint8)
    kind = np.asarray(truth["background"])
    got = tasks.classify_background(noisy)
    for name in ("gradient", "texture"):
        of = kind == BACKGROUNDS.index(name)
        assert of.any()
        np.testing.assert_array_equal(got[of], BACKGROUNDS.index(name))
    flat = np.full((N, T, H, W, 3), 60.0) + grain
    np.testing.assert_array_equal(tasks.classify_background(np.clip(flat, 0, 255).astype(np.uint8)), -1)


def test_tasks_for():
    assert tasks.tasks_for(["text"], has_source=False) == ["t2v"]
    assert tasks.tasks_for(["image", "text"], has_source=True) == ["t2v", "i2v"]
    assert tasks.tasks_for(["source_video", "image", "frames", "text"], has_source=True) == list(tasks.TASKS)
    assert tasks.tasks_for(["source_video", "text"], has_source=False) == ["t2v"]
    assert tasks.tasks_for(["source_video", "text"], has_source=True, text_key="instruction") == ["edit"]
    assert moving_shapes.config_spec("edit_16")["edit"] is True
