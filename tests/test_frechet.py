"""Fréchet distance: against scipy, on real / shuffled / noise clips, extractors, cache."""
import os
import sys

import numpy as np
import pytest

from vdm.data import moving_shapes as ms
from vdm.evaluation import frechet as fr


def random_gaussian(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return rng.standard_normal(d), a @ a.T / d


@pytest.mark.parametrize("d,rank", [(4, None), (32, None), (32, 8)])
def test_matches_scipy_sqrtm(d, rank):
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(d + (rank or 0))
    (mu1, s1), (mu2, s2) = random_gaussian(rng, d, rank), random_gaussian(rng, d, rank)
    root = linalg.sqrtm(s1 @ s2)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real
    assert fr.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert fr.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6)
    # Closed form for commuting (diagonal) covariances: sum (sqrt(a) - sqrt(b))^2.
    a, b = rng.uniform(0.1, 2, d), rng.uniform(0.1, 2, d)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fr.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed, rel=1e-9)
    with pytest.raises(ValueError, match="mismatched"):
        fr.frechet_distance(mu1, s1, mu2[:-1], s2)


@pytest.fixture(scope="module")
def real():
    test = np.stack([ms.example("quickstart", "test", i)["video"] for i in range(96)])
    train = np.stack([ms.example("quickstart", "train", i)["video"] for i in range(48)])
    return test, train


def test_same_data_is_near_zero_and_broken_clips_are_far(real):
    test, train = real
    ex = fr.load_extractor()
    reference = fr.statistics(ex(test))
    rng = np.random.default_rng(0)
    shuffled = np.stack([v[rng.permutation(len(v))] for v in train])
    frozen = np.repeat(train[:, :1], train.shape[1], 1)
    noise = rng.integers(0, 256, train.shape, dtype=np.uint8)
    same = fr.distance_to(train, reference, ex)
    assert same < 0.1
    assert fr.distance_to(shuffled, reference, ex) > 3 * same
    assert fr.distance_to(frozen, reference, ex) > 3 * same
    assert fr.distance_to(noise, reference, ex) > 100 * same
    # Deterministic: a second extractor computes the same features.
    np.testing.assert_array_equal(fr.load_extractor("random_conv")(train[:4]), ex(train[:4]))


def test_reference_stats_are_cached(real, tmp_path):
    test, _ = real
    calls = []

    def clips():
        calls.append(1)
        return test

    ex = fr.load_extractor()
    key = dict(data="quickstart", split="test", frames=8, stride=1)
    mu, sigma = fr.reference_stats(clips, ex, cache_dir=str(tmp_path), key=key)
    mu2, sigma2 = fr.reference_stats(clips, ex, cache_dir=str(tmp_path), key=key)
    assert len(calls) == 1 and len(os.listdir(tmp_path)) == 1
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)
    # Another clip length is another entry.
    fr.reference_stats(lambda: test[:, :4], ex, cache_dir=str(tmp_path), key={**key, "frames": 4})
    assert len(os.listdir(tmp_path)) == 2


def test_user_extractors(real, tmp_path, monkeypatch):
    test, _ = real
    rng = np.random.default_rng(1)
    path = tmp_path / "mine.npz"
    kernel = rng.standard_normal((3, 3, 3, 3, 5)).astype(np.float32)
    np.savez(path, kernel=kernel, stride=np.array([1, 1, 1]))
    ex = fr.load_extractor(str(path))
    assert ex.name.startswith("npz-mine-") and ex(test[:3]).shape == (3, 2 * 5 + 7)
    # A module:factory spec, e.g. a wrapper around a feature network on disk.
    mod = tmp_path / "my_features.py"
    mod.write_text("import numpy as np\n"
                   "def make():\n"
                   "    return lambda v: np.asarray(v, np.float32).reshape(len(v), -1)[:, :10]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ex = fr.load_extractor("my_features:make")
    assert ex.name == "my_features-make" and ex(test[:2]).shape == (2, 10)
    sys.modules.pop("my_features", None)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        fr.load_extractor(str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="module:factory"):
        fr.load_extractor("i3d")
    np.savez(tmp_path / "bad.npz", weights=kernel)
    with pytest.raises(ValueError, match="kernel"):
        fr.load_extractor(str(tmp_path / "bad.npz"))
