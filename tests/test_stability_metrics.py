"""Background flicker, identity across shots and per-frame drift on clips whose truth is known."""
import numpy as np
import pytest

from vdm.data import moving_shapes as ms
from vdm.evaluation import stability as st

TRUTH_KEYS = ("num_objects", "shape", "color", "size", "direction", "speed", "positions")


def clips(config, n=24):
    exs = [ms.example(config, "test", i) for i in range(n)]
    return np.stack([e["video"] for e in exs]), {k: np.stack([e[k] for e in exs]) for k in TRUTH_KEYS}


@pytest.mark.parametrize("config", ["quickstart", "hard_32", "edit_16"])
def test_real_clips_are_stable(config):
    videos, truth = clips(config)
    bg = st.background_metrics(videos)
    assert bg["background_flicker"] == 0.0 and bg["background_std"] == 0.0
    drift = st.drift_per_frame(videos, truth)
    T = videos.shape[1]
    for key in ("color_presence", "shape_adherence"):
        np.testing.assert_array_equal(drift[key], np.ones(T))
    np.testing.assert_array_equal(drift["area_deviation"], np.zeros(T))
    assert np.isnan(drift["speed_error"][0]) and np.nanmax(drift["speed_error"]) < 0.5
    summary = st.drift_summary(drift)
    assert summary["drift/color_presence_slope"] == 0.0 and summary["drift/area_deviation_slope"] == 0.0


def test_noise_flickers():
    videos, _ = clips("quickstart")
    noise = np.random.default_rng(0).integers(0, 256, videos.shape, dtype=np.uint8)
    bg = st.background_metrics(noise)
    assert bg["background_flicker"] > 30 and bg["background_std"] > 20
    # A static background with one flickering pixel: small but not zero.
    one = videos.copy()
    one[:, ::2, 0, 0] = 40
    assert 0 < st.background_metrics(one)["background_flicker"] < 1


def test_drift_follows_the_frame_index():
    videos, truth = clips("quickstart", 16)
    T = videos.shape[1]
    fading = videos.copy()
    fading[:, T // 2:] = 0  # the object is gone in the second half
    drift = st.drift_per_frame(fading, truth)
    np.testing.assert_array_equal(drift["color_presence"], [1.0] * (T // 2) + [0.0] * (T - T // 2))
    assert st.drift_summary(drift)["drift/color_presence_slope"] < -0.1
    # The object grows: a 2x2 block of its colour stuck to it from frame 4 on, so its area
    # deviates from the first frame's from then on.
    grown = videos.copy()
    for i in range(len(grown)):
        colour = videos[i, 0][(videos[i, 0] > 0).any(-1)][0]
        for t in range(4, T):
            yy, xx = np.nonzero((videos[i, t] > 0).any(-1))
            y, x = yy.max(), xx.max()
            grown[i, t, max(y - 1, 0):y + 1, min(x + 1, 14):min(x + 3, 16)] = colour
    drift = st.drift_per_frame(grown, truth)
    assert (drift["area_deviation"][:4] == 0).all() and (drift["area_deviation"][4:] > 0.05).all()


def test_identity_across_shots():
    videos, truth = clips("hard_32", 12)
    # The same objects seen moving elsewhere (flips): same identity in every shot.
    same = np.stack([videos, videos[:, :, ::-1], videos[:, :, :, ::-1]], 1)
    m = st.identity_across_shots(same, truth)
    assert m == {"identity_across_shots": 1.0, "shot_shape_agreement": 1.0, "shot_area_spread": 0.0}
    # Other prompts' clips as the other shots: colours and shapes change.
    other = np.stack([videos, np.roll(videos, 1, 0), np.roll(videos, 2, 0)], 1)
    m = st.identity_across_shots(other, truth)
    assert m["identity_across_shots"] < 0.2 and m["shot_shape_agreement"] < 0.6
    assert m["shot_area_spread"] > 0.3
    with pytest.raises(ValueError, match="seeds>=2"):
        st.identity_across_shots(videos[:, None], truth)
