"""Input pipeline: a TFDS random-access source → grain → per-process numpy batches → global
`jax.Array`s.

    source = make_source("quickstart", data_dir, "train")
    ds = make_dataset(source, batch_size=32, num_frames=8, seed=0,
                      process_index=jax.process_index(), process_count=jax.process_count(),
                      text_max_len=16, tokenize_fn=tokenize)
    it = iter(ds)
    batch = next(it)                                   # dict of numpy arrays, see below
    arrays = to_global(batch, mesh)                    # numeric keys only

Each process reads a disjoint, equal-sized contiguous shard of the split (the last
`len % process_count` examples are dropped so every process yields the same number of
batches), shuffles it with `seed` (reshuffled every epoch), samples a clip of `num_frames`
frames `frame_stride` apart at a random start (a pure function of the seed and the position
in the stream), scales pixels to [-1, 1], tokenizes the caption and batches.

Batch (per process, B = batch_size, T = num_frames, L = text_max_len, K = MAX_OBJECTS):
    video       float32 [B, T, H, W, 3]   in [-1, 1]
    text_ids    int32   [B, L]            only with a tokenize_fn: tokens of `text_key`
    text_mask   bool    [B, L]            only with a tokenize_fn
    caption     numpy str (dtype '<U…')  [B]   not numeric: to_global drops it
    frame_start int32   [B]               first stored frame of the clip
    and the ground truth, cropped to the sampled frames:
    num_objects int32 [B], shape/color/size/direction int32 [B, K], speed float32 [B, K]
    (px per returned frame, i.e. stored speed × frame_stride; -1 padding),
    positions float32 [B, K, T, 2], background int32 [B].
    Edit pairs add source_video float32 [B, T, H, W, 3] in [-1, 1] (cropped like video), the
    source_* truth (cropped likewise), instruction and source_caption (str), edit_kind.

Checkpointing the iterator (it is a `grain.DatasetIterator`):
- `state = it.get_state()` is a small JSON-serializable dict (e.g. {"next_index": 7});
  `it2 = iter(make_dataset(<same arguments>)); it2.set_state(state)` continues exactly.
- With orbax, save it next to the train state as
  `grain.checkpoint.CheckpointSave(it)` and restore with `grain.checkpoint.CheckpointRestore(it)`
  (e.g. inside `ocp.args.Composite(..., data_iter=...)`); each process writes
  `process_<i>-of-<n>.json`, so restore with the same process count.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds
from jax.sharding import NamedSharding, PartitionSpec as P

from vdm.data import moving_shapes

TokenizeFn = Callable[[str, int], tuple[np.ndarray, np.ndarray]]

BATCH_AXES = ("data", "fsdp")


class NamedSource:
    """A random-access source with a stable, content-identifying `repr` (grain's DataLoader
    compares source reprs when restoring an iterator; a memory address would never match)."""

    def __init__(self, source, name: str):
        self._source = source
        self._name = name

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        return self._source[index]

    def __getitems__(self, indices: Sequence[int]):
        return self._source.__getitems__(indices)

    def __repr__(self) -> str:
        return f"NamedSource({self._name})"


def make_source(config_name: str, data_dir: str | os.PathLike, split: str) -> NamedSource:
    """Random-access source of a dataset split (`tfds.data_source`). A bare name is a
    `moving_shapes` config, built first if missing; "dataset/config" opens any registered,
    already-prepared TFDS dataset (import its builder module first). Elements are dicts of
    numpy arrays; `caption` is bytes."""
    if "/" in config_name:
        builder = tfds.builder(config_name, data_dir=os.fspath(data_dir))
        source = builder.as_data_source(split=split)
        return NamedSource(source, f"{config_name}:{builder.version}/{split}")
    builder = moving_shapes.build(config_name, data_dir)
    source = builder.as_data_source(split=split)
    return NamedSource(source, f"{builder.name}/{config_name}:{builder.version}/{split}")


class _SampleClip(grain.transforms.RandomMap):
    """Crop a stored clip in time: `num_frames` frames, `stride` apart, random start."""

    def __init__(self, num_frames: int, stride: int, random_start: bool):
        self.num_frames, self.stride, self.random_start = num_frames, stride, random_start

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        stored = element["video"].shape[0]
        span = (self.num_frames - 1) * self.stride + 1
        start = int(rng.integers(0, stored - span + 1)) if self.random_start else 0
        frames = start + self.stride * np.arange(self.num_frames)
        out = dict(element)
        out["frame_start"] = np.int32(start)
        for prefix in ("", "source_"):  # an edit pair's source is cropped like its target
            if prefix + "video" in element:
                out[prefix + "video"] = element[prefix + "video"][frames]
            if prefix + "positions" in element:
                out[prefix + "positions"] = element[prefix + "positions"][:, frames]
            if prefix + "speed" in element:
                speed = np.asarray(element[prefix + "speed"], np.float32)
                out[prefix + "speed"] = np.where(speed >= 0, speed * self.stride, speed).astype(np.float32)
        return out


class _Finalize(grain.transforms.Map):
    """Pixels to float32 [-1, 1], texts to str (+ tokens of `text_key`), scalars to int32."""

    def __init__(self, tokenize_fn: TokenizeFn | None, text_max_len: int, text_key: str = "caption"):
        self.tokenize_fn, self.text_max_len, self.text_key = tokenize_fn, text_max_len, text_key

    def map(self, element: dict) -> dict:
        out = {}
        if self.tokenize_fn is not None and self.text_key not in element:
            raise KeyError(f"text_key {self.text_key!r} is not in the dataset's examples "
                           f"(keys: {sorted(element)})")
        for key, value in element.items():
            if key in ("video", "source_video"):
                out[key] = value.astype(np.float32) / 127.5 - 1.0
            elif key in ("caption", "source_caption", "instruction"):
                out[key] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
            elif isinstance(value, (int, np.integer)):
                out[key] = np.int32(value)
            else:
                out[key] = value
        if self.tokenize_fn is not None:
            ids, mask = self.tokenize_fn(out[self.text_key], self.text_max_len)
            out["text_ids"] = np.asarray(ids, np.int32)
            out["text_mask"] = np.asarray(mask, bool)
        return out


def make_dataset(
    source,
    *,
    batch_size: int,
    num_frames: int,
    frame_stride: int = 1,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    text_max_len: int = 32,
    tokenize_fn: TokenizeFn | None = None,
    text_key: str = "caption",
    drop_remainder: bool = True,
    random_clip: bool = True,
    read_threads: int = 4,
) -> grain.IterDataset:
    """A grain dataset of per-process batches (keys in the module docstring).

    batch_size is per process. num_epochs=None repeats forever. With shuffle=False and
    random_clip=False (evaluation) the order and the clips are the stored ones. The result
    iterates to a checkpointable iterator (`get_state()` / `set_state()`).
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    if frame_stride < 1 or num_frames < 1:
        raise ValueError("num_frames and frame_stride must be >= 1")
    stored = source[0]["video"].shape[0]
    span = (num_frames - 1) * frame_stride + 1
    if span > stored:
        raise ValueError(
            f"{num_frames} frames at stride {frame_stride} span {span} > {stored} stored frames"
        )
    shard = len(source) // process_count
    if shard == 0:
        raise ValueError(f"{len(source)} examples cannot be split over {process_count} processes")

    ds = grain.MapDataset.source(source).seed(seed)
    ds = ds[process_index * shard : (process_index + 1) * shard]
    if shuffle:
        ds = ds.shuffle()
    ds = ds.repeat(num_epochs)
    ds = ds.random_map(_SampleClip(num_frames, frame_stride, random_clip))
    ds = ds.map(_Finalize(tokenize_fn, text_max_len, text_key))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.to_iter_dataset(
        grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=2 * read_threads)
    )


def _is_numeric(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and (np.issubdtype(dtype, np.number) or dtype == np.bool_)


def to_global(
    batch: dict[str, np.ndarray],
    mesh: jax.sharding.Mesh,
    spec: P | None = None,
) -> dict[str, jax.Array]:
    """Assemble per-process numpy batches into global `jax.Array`s, batch dimension sharded
    over `spec`'s first entry (default ('data', 'fsdp')), other dimensions replicated.

    Non-numeric keys (caption) are dropped. Every process passes its own batch of the same
    shape; the global batch is process_count times larger.
    """
    batch_axes = spec[0] if spec is not None and len(spec) else BATCH_AXES
    out = {}
    for key, value in batch.items():
        if not _is_numeric(value):
            continue
        value = np.asarray(value)
        sharding = NamedSharding(mesh, P(batch_axes, *([None] * (value.ndim - 1))))
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out
