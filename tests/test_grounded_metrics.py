"""Grounded metrics on clips whose truth is known."""
import numpy as np
import pytest

from vdm.data import moving_shapes as ms
from vdm.data import shapes_render as sr
from vdm.evaluation import grounded as g

TRUTH_KEYS = ("num_objects", "shape", "color", "size", "direction", "speed", "positions")
ADHERENCE = (
    "color_adherence",
    "color_adherence_clip",
    "shape_adherence",
    "count_adherence",
    "identity_consistency",
    "direction_adherence",
)


def clips(config, n=48, split="test"):
    exs = [ms.example(config, split, i) for i in range(n)]
    truth = {k: np.stack([e[k] for e in exs]) for k in TRUTH_KEYS}
    return np.stack([e["video"] for e in exs]), truth


@pytest.fixture(scope="module", params=sorted(ms.CONFIGS))
def real(request):
    videos, truth = clips(request.param)
    return request.param, videos, truth, g.grounded_metrics(videos, truth)


def test_shape_classifier_on_every_sprite():
    for size in range(4, 13):
        for k, name in enumerate(sr.SHAPES):
            mask = sr.shape_mask(name, size)
            ys, xs = np.nonzero(mask)
            h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
            taper = abs((ys == ys.max()).sum() - (ys == ys.min()).sum()) / w
            assert g.classify_shape(mask.sum() / (h * w), taper) == k, (name, size)


def test_components_match_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    density = np.array([0.2, 0.45, 0.6, 0.75, 0.9, 1.0])[:, None, None]
    classes = np.where(rng.random((6, 24, 24)) < density, rng.integers(0, 3, (6, 24, 24)), -1)
    # A one-pixel-wide serpentine: one long component that needs many propagation steps.
    snake = np.full((24, 24), -1)
    snake[::2] = 0
    snake[1::4, -1] = 0
    snake[3::4, 0] = 0
    classes[-1] = snake
    labels = g.label_components(classes)
    assert (labels[classes < 0] == -1).all()
    for f in range(classes.shape[0]):
        for c in range(3):
            ref, count = ndimage.label(classes[f] == c, structure=np.ones((3, 3)))
            ours = labels[f][classes[f] == c]
            theirs = ref[classes[f] == c]
            # Same partition: a bijection between our ids and scipy's.
            pairs = set(zip(ours.tolist(), theirs.tolist()))
            assert len(pairs) == len(set(ours.tolist())) == len(set(theirs.tolist())) == count


def test_segmentation_ignores_backgrounds():
    videos, _ = clips("hard_32", 16)
    seg = g.segment_colors(videos)
    exact = (videos[..., None, :] == sr.PALETTE).all(-1).any(-1)
    np.testing.assert_array_equal(seg >= 0, exact)


def test_real_clips_score_perfectly(real):
    config, _, _, m = real
    for key in ADHERENCE:
        assert m[key] >= 0.98, (config, key, m[key])
    recalls = [m[f"shape_recall/{name}"] for name in sr.SHAPES if f"shape_recall/{name}" in m]
    assert len(recalls) >= 2 and min(recalls) >= 0.98, (config, recalls)
    assert m["size_error"] < 0.5
    assert m["speed_error"] < 0.25
    assert m["direction_chance"] == pytest.approx(1 / 8)
    assert m["shape_chance"] == pytest.approx(1 / 3)


def test_noise_scores_low(real):
    config, videos, truth, _ = real
    noise = np.random.default_rng(1).integers(0, 256, videos.shape, dtype=np.uint8)
    m = g.grounded_metrics(noise, truth)
    for key in ("color_adherence", "shape_adherence", "count_adherence", "direction_adherence"):
        assert m[key] < 0.2, (config, key, m[key])
    assert m["identity_consistency"] < 0.05 and m["color_adherence_clip"] < 0.05


def test_blank_clips_score_zero(real):
    # A plain grey clip (what an untrained x0-predicting model samples) has no component of
    # any palette colour: every adherence is 0, nothing raises.
    config, videos, truth, _ = real
    m = g.grounded_metrics(np.full_like(videos, 128), truth)
    for key in ADHERENCE:
        assert m[key] == 0.0, (config, key, m[key])
    assert m["identity_lost/absent"] == 1.0


def test_shuffled_frames_break_motion(real):
    config, videos, truth, m_real = real
    rng = np.random.default_rng(2)
    # A permutation of the frames that moves at least half of them.
    T = videos.shape[1]
    perms = []
    while len(perms) < len(videos):
        p = rng.permutation(T)
        if (p != np.arange(T)).mean() >= 0.5:
            perms.append(p)
    shuffled = np.stack([v[p] for v, p in zip(videos, perms)])
    m = g.grounded_metrics(shuffled, truth)
    # Appearance is untouched; motion is not (a permuted straight track keeps its axis, so
    # about half the directions survive by the sign of the fit).
    assert m["color_adherence"] >= 0.98 and m["identity_consistency"] >= 0.98
    assert m["direction_adherence"] < 0.75, (config, m["direction_adherence"])
    assert m["smoothness"] > 2.5 * m_real["smoothness"], config
    assert m["max_step"] > 1.5 * m_real["max_step"], config


def test_wrong_prompts_score_low(real):
    config, videos, truth, _ = real
    # The truth of other clips (shifted by one), e.g. another colour or direction.
    wrong = {k: np.roll(v, 1, axis=0) for k, v in truth.items()}
    m = g.grounded_metrics(videos, wrong)
    assert m["color_adherence"] < 0.35, (config, m["color_adherence"])
    assert m["direction_adherence"] < 0.35, (config, m["direction_adherence"])


def test_shape_recall_names_the_missed_shape():
    videos, truth = clips("quickstart", 48)
    shape = truth["shape"][:, 0]
    assert {0, 1, 2} <= set(shape.tolist())
    # Every square loses its four corner pixels in every frame: it is now a circle.
    rounded = videos.copy()
    for i in np.flatnonzero(shape == sr.SHAPES.index("square")):
        for t in range(videos.shape[1]):
            ys, xs = np.nonzero((rounded[i, t] == sr.PALETTE[truth["color"][i, 0]]).all(-1))
            for y in (ys.min(), ys.max()):
                for x in (xs.min(), xs.max()):
                    rounded[i, t, y, x] = 0
    m = g.grounded_metrics(rounded, truth)
    assert m["shape_recall/square"] == 0.0
    assert m["shape_recall/circle"] >= 0.98 and m["shape_recall/triangle"] >= 0.98
    frac = (shape == sr.SHAPES.index("square")).mean()
    assert m["shape_adherence"] == pytest.approx(1.0 - frac, abs=0.03)


def test_targeted_failures_move_the_right_metric():
    videos, truth = clips("quickstart", 16)
    T = videos.shape[1]
    # The object vanishes in the second half of every clip.
    gone = videos.copy()
    gone[:, T // 2 :] = 0
    m = g.grounded_metrics(gone, truth)
    assert m["color_adherence"] == pytest.approx(0.5)
    assert m["color_adherence_clip"] == 0.0 and m["identity_consistency"] == 0.0
    assert m["identity_lost/absent"] == 1.0
    # A stray blob of another palette colour in every frame: only the count suffers.
    stray = videos.copy()
    other = (truth["color"][:, 0] + 1) % len(sr.PALETTE)
    for i in range(len(stray)):
        stray[i, :, 0:2, 0:2] = sr.PALETTE[other[i]]
        stray[i, :, 14:16, 14:16] = sr.PALETTE[other[i]]
    m = g.grounded_metrics(stray, truth)
    assert m["color_adherence"] == 1.0 and m["shape_adherence"] >= 0.9
    assert m["count_adherence"] <= 0.1
    # A frozen clip (first frame repeated): no motion, so no direction.
    frozen = np.repeat(videos[:, :1], T, axis=1)
    m = g.grounded_metrics(frozen, truth)
    assert m["direction_adherence"] == 0.0 and m["identity_consistency"] == 1.0
    # Time reversal: every direction flips.
    assert g.grounded_metrics(videos[:, ::-1], truth)["direction_adherence"] == 0.0


def test_identity_lost_names_the_cause():
    videos, truth = clips("quickstart", 16)
    T = videos.shape[1]
    m = g.grounded_metrics(videos, truth)
    assert m["identity_consistency"] == 1.0
    assert m["identity_lost/absent"] == m["identity_lost/shape"] == m["identity_lost/area"] == 0.0
    square = np.flatnonzero(truth["shape"][:, 0] == sr.SHAPES.index("square"))[:2]
    broken = videos.copy()
    # Clips a, b: in one frame the square loses its four corners (it reads as a circle).
    for i in square:
        ys, xs = np.nonzero((broken[i, 3] == sr.PALETTE[truth["color"][i, 0]]).all(-1))
        for y in (ys.min(), ys.max()):
            for x in (xs.min(), xs.max()):
                broken[i, 3, y, x] = 0
    # Clip c: the object doubles in size (a copy beside it, touching) in one frame.
    c = next(i for i in range(16) if i not in square)
    col = (broken[c, 0] == sr.PALETTE[truth["color"][c, 0]]).all(-1)
    ys, xs = np.nonzero(col)
    h = ys.max() - ys.min() + 1
    broken[c, 0] = 0
    y0 = max(0, min(ys.min(), 16 - 2 * h))
    patch = col[ys.min():ys.max() + 1]
    broken[c, 0, y0:y0 + h][patch] = sr.PALETTE[truth["color"][c, 0]]
    broken[c, 0, y0 + h:y0 + 2 * h][patch] = sr.PALETTE[truth["color"][c, 0]]
    m = g.grounded_metrics(broken, truth)
    assert m["identity_lost/shape"] == pytest.approx(2 / 16)
    assert m["identity_lost/area"] == pytest.approx(1 / 16)
    assert m["identity_lost/absent"] == 0.0
    assert m["identity_consistency"] == pytest.approx(13 / 16)


def test_float_videos_and_format():
    videos, truth = clips("smoke", 8)
    as_float = videos.astype(np.float32) / 127.5 - 1.0
    assert g.grounded_metrics(as_float, truth) == g.grounded_metrics(videos, truth)
    line = g.format_metrics(g.grounded_metrics(videos, truth))
    assert "\n" not in line
    for word in ("color 1.00", "shape 1.00", "count 1.00", "identity 1.00", "direction 1.00"):
        assert word in line
