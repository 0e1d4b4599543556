"""moving_shapes: the TFDS builder and the numpy renderer behind it."""
import itertools
import runpy
from pathlib import Path

import numpy as np
import pytest

from vdm.data import moving_shapes as ms
from vdm.data import shapes_render as sr

FIELDS = {
    "video": (np.uint8, lambda T: (T, 16, 16, 3)),
    "num_objects": (np.int32, lambda T: ()),
    "shape": (np.int32, lambda T: (3,)),
    "color": (np.int32, lambda T: (3,)),
    "size": (np.int32, lambda T: (3,)),
    "direction": (np.int32, lambda T: (3,)),
    "speed": (np.float32, lambda T: (3,)),
    "positions": (np.float32, lambda T: (3, T, 2)),
    "background": (np.int32, lambda T: ()),
}


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    ms.build("smoke", data_dir)
    return data_dir


def examples(config, n, split="test"):
    return [ms.example(config, split, i) for i in range(n)]


def test_smoke_build_features(smoke_dir):
    builder = ms.build("smoke", smoke_dir)
    assert builder.info.splits["train"].num_examples == 24
    assert builder.info.splits["test"].num_examples == 8
    source = builder.as_data_source(split="train")
    assert len(source) == 24
    T = ms.CONFIGS["smoke"].num_frames
    for element in (source[0], source[23]):
        assert set(element) == set(FIELDS) | {"caption"}
        for key, (dtype, shape) in FIELDS.items():
            value = np.asarray(element[key])
            assert value.shape == shape(T), key
            scalar_int = shape(T) == () and np.issubdtype(value.dtype, np.integer)
            assert value.dtype == dtype or scalar_int, key
        assert isinstance(element["caption"], bytes)


def test_stored_examples_equal_rendered_ones(smoke_dir):
    source = ms.build("smoke", smoke_dir).as_data_source(split="train")
    for i in (0, 5, 23):
        stored, rendered = source[i], ms.example("smoke", "train", i)
        assert stored["caption"].decode() == rendered["caption"]
        for key in FIELDS:
            np.testing.assert_array_equal(np.asarray(stored[key]), rendered[key], err_msg=key)


def test_build_is_deterministic_and_idempotent(smoke_dir, tmp_path):
    other = ms.build("smoke", tmp_path)
    a = ms.build("smoke", smoke_dir).as_data_source(split="test")
    b = other.as_data_source(split="test")
    for i in range(len(a)):
        for key in FIELDS:
            np.testing.assert_array_equal(np.asarray(a[i][key]), np.asarray(b[i][key]))
        assert a[i]["caption"] == b[i]["caption"]
    files = {p.name: p.stat().st_mtime_ns for p in Path(other.data_dir).iterdir()}
    ms.build("smoke", tmp_path)  # already built: only opened, nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in Path(other.data_dir).iterdir()} == files
    assert any(".array_record" in f for f in files)


def test_train_and_test_differ():
    train, test = examples("quickstart", 8, "train"), examples("quickstart", 8, "test")
    assert not any(np.array_equal(a["video"], b["video"]) for a in train for b in test)


def test_cli_builds(tmp_path, capsys):
    cli = runpy.run_path(str(Path(__file__).parents[1] / "tools" / "build_dataset.py"))
    cli["main"](["--config", "smoke", "--data_dir", str(tmp_path)])
    assert "train: 24" in capsys.readouterr().out
    assert (tmp_path / "moving_shapes" / "smoke").is_dir()


@pytest.mark.parametrize("config", sorted(ms.CONFIGS))
def test_captions_name_the_factors(config):
    params = ms.CONFIGS[config].scene
    for ex in examples(config, 40):
        caption = ex["caption"]
        words = []
        for j in range(int(ex["num_objects"])):
            phrase = []
            if "size" in params.caption_factors:
                phrase.append(sr.SIZE_WORDS[len(params.sizes)][params.sizes.index(ex["size"][j])])
            phrase += [sr.COLOR_NAMES[ex["color"][j]], sr.SHAPES[ex["shape"][j]], "moves",
                       sr.DIRECTION_NAMES[ex["direction"][j]]]
            if "speed" in params.caption_factors:
                k = int(np.argmin(np.abs(np.array(params.speeds) - ex["speed"][j])))
                assert abs(params.speeds[k] - ex["speed"][j]) < 1e-6
                phrase.append(sr.SPEED_WORDS[len(params.speeds)][k])
            words.append("a " + " ".join(phrase))
            assert words[-1] in caption
        # Objects appear in order; nothing is named that the config does not vary.
        positions = [caption.index(w) for w in words]
        assert positions == sorted(positions)
        if "background" in params.caption_factors:
            bg = sr.BACKGROUND_WORDS[sr.BACKGROUNDS[ex["background"]]]
            assert caption.endswith(f" on a {bg} background")
        else:
            assert "background" not in caption
        if "size" not in params.caption_factors:
            assert not any(w in caption.split() for w in ("small", "medium", "large"))
        if "speed" not in params.caption_factors:
            assert not any(w in caption.split() for w in ("slowly", "steadily", "quickly"))


def test_caption_grammar_examples():
    params = ms.CONFIGS["hard_32"].scene
    truth = {
        "num_objects": 2, "shape": [1, 2, -1], "color": [0, 1, -1], "size": [6, 10, -1],
        "direction": [4, 6, -1], "speed": [1.0, 3.0, -1], "background": 2,
    }
    assert sr.make_caption(truth, params) == (
        "a small red circle moves left slowly and a large green triangle moves down quickly "
        "on a textured background"
    )
    assert sr.make_caption(truth | {"num_objects": 1}, ms.CONFIGS["quickstart"].scene) == (
        "a red circle moves left"
    )


@pytest.mark.parametrize("config", sorted(ms.CONFIGS))
def test_positions_are_pixel_centroids_and_objects_are_whole(config):
    """Each object's pixels (its colour) have the stored centroid and the full sprite area in
    every frame: nothing is clipped by the frame border or occluded."""
    for ex in examples(config, 40):
        video, n = ex["video"], int(ex["num_objects"])
        assert (ex["shape"][n:] == -1).all() and (ex["positions"][n:] == -1).all()
        for j in range(n):
            area = sr.shape_mask(int(ex["shape"][j]), int(ex["size"][j])).sum()
            mask = (video == sr.PALETTE[ex["color"][j]]).all(-1)  # [T, H, W]
            for t in range(video.shape[0]):
                ys, xs = np.nonzero(mask[t])
                assert len(ys) == area
                centroid = np.array([ys.mean(), xs.mean()])
                np.testing.assert_allclose(centroid, ex["positions"][j, t], atol=0.5)
                np.testing.assert_allclose(centroid, ex["positions"][j, t], atol=1e-4)


@pytest.mark.parametrize("config", ["quickstart", "t2v_32", "smoke"])
def test_without_bounce_objects_move_straight(config):
    """Bounce off: displacement over the clip matches speed x direction (no reflection)."""
    assert not ms.CONFIGS[config].scene.bounce
    for ex in examples(config, 60):
        p = ex["positions"][0]
        T = len(p)
        expected = ex["speed"][0] * (T - 1) * sr.DIRECTION_VECTORS[ex["direction"][0]]
        np.testing.assert_allclose(p[-1] - p[0], expected, atol=1.0)
        steps = np.diff(p, axis=0)
        assert ((steps * np.sign(expected)) >= 0).all()


def test_hard_32_bounces_and_varies():
    exs = examples("hard_32", 80)
    reversed_steps = 0
    for ex in exs:
        for j in range(int(ex["num_objects"])):
            d = sr.DIRECTION_VECTORS[ex["direction"][j]]
            reversed_steps += int((np.diff(ex["positions"][j], axis=0) * d < -0.5).any())
    assert reversed_steps > 10
    assert set(int(e["num_objects"]) for e in exs) == {1, 2, 3}
    assert set(int(e["background"]) for e in exs) == {0, 1, 2}


def test_palette_far_from_backgrounds():
    pal = sr.PALETTE.astype(float)
    pair = np.linalg.norm(pal[:, None] - pal[None], axis=-1)
    assert pair[~np.eye(len(pal), dtype=bool)].min() >= 255
    rng = np.random.default_rng(0)
    greys = []
    for kind, _ in itertools.product(sr.BACKGROUNDS, range(10)):
        bg = sr.render_background(kind, 32, 32, rng)
        assert (bg[..., 0] == bg[..., 1]).all() and (bg[..., 1] == bg[..., 2]).all()
        greys.append(bg.reshape(-1, 3))
    greys = np.unique(np.concatenate(greys), axis=0).astype(float)
    assert np.linalg.norm(greys[:, None] - pal[None], axis=-1).min() >= 200
    # In rendered clips, every pixel is either an object's exact colour or a grey.
    for ex in examples("hard_32", 20):
        v = ex["video"].reshape(-1, 3)
        is_grey = (v[:, 0] == v[:, 1]) & (v[:, 1] == v[:, 2]) & (v[:, 0] <= 110)
        is_palette = (v[:, None] == sr.PALETTE[None]).all(-1).any(-1)
        assert (is_grey | is_palette).all()


def test_sprites_are_distinct_at_config_sizes():
    sizes = sorted({s for c in ms.CONFIGS.values() for s in c.scene.sizes})
    for size in sizes:
        masks = [sr.shape_mask(s, size) for s in sr.SHAPES]
        for m in masks:  # bounding box is exactly size x size
            assert m.any(0).all() and m.any(1).all() and m.shape == (size, size)
        assert len({m.tobytes() for m in masks}) == 3


def test_config_spec():
    spec = ms.config_spec("t2v_32")
    assert (spec["num_frames"], spec["height"], spec["width"]) == (16, 32, 32)
    assert ms.config_spec("quickstart")["num_train"] == 4096


def test_scene_params_reject_impossible_configs():
    with pytest.raises(ValueError, match="leaves"):
        sr.SceneParams(num_frames=16, height=32, width=32, sizes=(6, 8, 10), speeds=(1.0, 2.0))
    with pytest.raises(ValueError):
        sr.SceneParams(num_frames=4, height=16, width=16, colors=("red",), max_objects=2)
    with pytest.raises(ValueError):
        ms.build("nope", "unused")
