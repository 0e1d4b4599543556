"""Input pipeline: grain over the moving_shapes data source, and global arrays."""
import json
import os

import grain
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from vdm.data import moving_shapes as ms
from vdm.data import pipeline

L = 24


def byte_tokenize(text, max_len):
    ids = np.zeros(max_len, np.int32)
    raw = np.frombuffer(text.encode()[:max_len], np.uint8).astype(np.int32) + 1
    ids[: len(raw)] = raw
    return ids, ids > 0


@pytest.fixture(scope="module")
def source(data_dir):
    return pipeline.make_source("smoke", data_dir, "train")


def dataset(source, **kw):
    args = dict(batch_size=4, num_frames=4, seed=0, text_max_len=L, tokenize_fn=byte_tokenize)
    return pipeline.make_dataset(source, **(args | kw))


def take(ds_or_it, n):
    it = iter(ds_or_it)
    return [next(it) for _ in range(n)]


def key_of(video):
    return np.asarray(video).tobytes()


def test_source_repr_is_stable(data_dir, source):
    again = pipeline.make_source("smoke", data_dir, "train")
    assert repr(source) == repr(again) == "NamedSource(moving_shapes/smoke:1.0.0/train)"
    assert len(source) == 24


def test_batch_keys_shapes_dtypes_range(source):
    (batch,) = take(dataset(source), 1)
    B, T, K = 4, 4, ms.MAX_OBJECTS
    expected = {
        "video": (np.float32, (B, T, 16, 16, 3)),
        "text_ids": (np.int32, (B, L)),
        "text_mask": (np.bool_, (B, L)),
        "frame_start": (np.int32, (B,)),
        "num_objects": (np.int32, (B,)),
        "shape": (np.int32, (B, K)),
        "color": (np.int32, (B, K)),
        "size": (np.int32, (B, K)),
        "direction": (np.int32, (B, K)),
        "speed": (np.float32, (B, K)),
        "positions": (np.float32, (B, K, T, 2)),
        "background": (np.int32, (B,)),
    }
    assert set(batch) == set(expected) | {"caption"}
    for key, (dtype, shape) in expected.items():
        assert batch[key].dtype == dtype and batch[key].shape == shape, key
    assert batch["caption"].dtype.kind == "U" and batch["caption"].shape == (B,)
    assert batch["video"].min() >= -1.0 and batch["video"].max() <= 1.0
    assert batch["video"].min() == -1.0  # black background
    for caption, ids, mask in zip(batch["caption"], batch["text_ids"], batch["text_mask"]):
        np.testing.assert_array_equal((ids, mask), byte_tokenize(str(caption), L))
        assert caption.startswith("a ")


def test_batches_match_stored_examples(source):
    """Unshuffled, full-length clips are the stored examples, scaled to [-1, 1]."""
    ds = dataset(source, shuffle=False, num_epochs=1, random_clip=False)
    batches = list(ds)
    assert len(batches) == 6
    for i, j in [(0, 0), (2, 3), (5, 3)]:
        stored = source[4 * i + j]
        np.testing.assert_allclose(
            batches[i]["video"][j], stored["video"].astype(np.float32) / 127.5 - 1.0, atol=1e-6
        )
        np.testing.assert_array_equal(batches[i]["positions"][j], stored["positions"])
        assert batches[i]["caption"][j] == stored["caption"].decode()


def test_seeded_order(source):
    a = take(dataset(source, seed=1), 12)
    b = take(dataset(source, seed=1), 12)
    c = take(dataset(source, seed=2), 12)
    va, vb, vc = (np.stack([x["video"] for x in bs]) for bs in (a, b, c))
    np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(va, vc)
    # Each epoch (6 batches) is a permutation of the split, reshuffled between epochs.
    epochs = [[key_of(v) for x in a[e * 6 : (e + 1) * 6] for v in x["video"]] for e in (0, 1)]
    assert len(set(epochs[0])) == len(set(epochs[1])) == 24
    assert set(epochs[0]) == set(epochs[1]) and epochs[0] != epochs[1]


def test_processes_read_disjoint_covering_shards(source):
    seen = []
    for p in range(2):
        ds = dataset(source, process_index=p, process_count=2, num_epochs=1, batch_size=3)
        keys = [key_of(v) for batch in ds for v in batch["video"]]
        assert len(keys) == 12 == len(set(keys))
        seen.append(set(keys))
    assert not seen[0] & seen[1]
    everything = {key_of(source[i]["video"].astype(np.float32) / 127.5 - 1.0) for i in range(24)}
    assert seen[0] | seen[1] == everything


def test_clip_sampling_with_stride(source):
    ds = dataset(source, num_frames=2, frame_stride=2, shuffle=False, num_epochs=1)
    starts = []
    for b, batch in enumerate(ds):
        for j in range(4):
            stored = source[4 * b + j]
            s = int(batch["frame_start"][j])
            starts.append(s)
            frames = [s, s + 2]
            np.testing.assert_allclose(
                batch["video"][j], stored["video"][frames].astype(np.float32) / 127.5 - 1, atol=1e-6
            )
            np.testing.assert_array_equal(batch["positions"][j], stored["positions"][:, frames])
            n = stored["num_objects"]
            np.testing.assert_allclose(batch["speed"][j][:n], 2 * stored["speed"][:n])
            assert (batch["speed"][j][n:] == -1).all()
    assert set(starts) == {0, 1}
    again = [int(s) for batch in dataset(source, num_frames=2, frame_stride=2, shuffle=False,
                                         num_epochs=1) for s in batch["frame_start"]]
    assert again == starts
    with pytest.raises(ValueError, match="span"):
        dataset(source, num_frames=3, frame_stride=2)


def test_iterator_state_restores_mid_epoch(source):
    ds = dataset(source, seed=3)
    it = iter(ds)
    for _ in range(2):  # 6 batches per epoch: stop mid-epoch
        next(it)
    state = json.loads(json.dumps(it.get_state()))  # what a checkpoint stores
    expected = [next(it) for _ in range(6)]  # runs across the epoch boundary
    fresh = iter(dataset(source, seed=3))
    fresh.set_state(state)
    for want, got in zip(expected, (next(fresh) for _ in range(6))):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key], err_msg=key)


def test_iterator_checkpoints_with_orbax(source, tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    it = iter(dataset(source, seed=4))
    next(it)
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.save(1, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
    want = next(it)
    fresh = iter(dataset(source, seed=4))
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.restore(1, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
    got = next(fresh)
    np.testing.assert_array_equal(want["video"], got["video"])


def test_to_global_shards_batch_over_data_axes(source):
    assert jax.device_count() == 8
    mesh = jax.sharding.Mesh(
        np.array(jax.devices()).reshape(8, 1, 1, 1), ("data", "fsdp", "sequence", "tensor")
    )
    (batch,) = take(dataset(source, batch_size=8), 1)
    arrays = pipeline.to_global(batch, mesh)
    assert "caption" not in arrays and set(arrays) == set(batch) - {"caption"}
    for key, value in arrays.items():
        assert isinstance(value, jax.Array) and value.shape == batch[key].shape, key
        assert value.dtype == batch[key].dtype
        assert value.sharding.spec[0] == ("data", "fsdp")
        assert len(value.addressable_shards) == 8
        assert {s.data.shape[0] for s in value.addressable_shards} == {1}
        np.testing.assert_array_equal(np.asarray(value), batch[key])
    video = arrays["video"]
    assert video.addressable_shards[3].index[0] == slice(3, 4)
    # A custom spec: the batch over 'data' only.
    mesh2 = jax.sharding.Mesh(
        np.array(jax.devices()).reshape(4, 2, 1, 1), ("data", "fsdp", "sequence", "tensor")
    )
    (small,) = take(dataset(source, batch_size=4), 1)
    out = pipeline.to_global(small, mesh2, P("data"))
    assert out["video"].sharding.spec[0] == "data"
    assert {s.data.shape[0] for s in out["video"].addressable_shards} == {1}


FRESH_PROCESS_RESTORE = """
import json, sys
import numpy as np
import test_data_pipeline as t
from vdm.data import pipeline
source = pipeline.make_source("smoke", sys.argv[1], "train")
it = iter(t.dataset(source, seed=5))
it.set_state(json.loads(sys.argv[2]))
batches = [next(it) for _ in range(3)]
np.savez(sys.argv[3], **{f"{i}/{k}": v for i, b in enumerate(batches) for k, v in b.items() if k != "caption"},
         **{f"{i}/caption": np.array([str(c) for c in b["caption"]]) for i, b in enumerate(batches)})
"""


def test_iterator_state_restores_in_a_fresh_process(source, data_dir, tmp_path):
    import subprocess
    import sys

    from launch import ROOT, child_env

    it = iter(dataset(source, seed=5))
    for _ in range(2):  # mid-epoch
        next(it)
    state = json.dumps(it.get_state())
    expected = [next(it) for _ in range(3)]
    out = tmp_path / "next.npz"
    env = child_env(1)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "tests")])
    r = subprocess.run([sys.executable, "-c", FRESH_PROCESS_RESTORE, str(data_dir), state, str(out)], env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    for i, batch in enumerate(expected):
        for key, value in batch.items():
            np.testing.assert_array_equal(got[f"{i}/{key}"], np.asarray(value).astype(got[f"{i}/{key}"].dtype)
                                          if key == "caption" else value, err_msg=key)
