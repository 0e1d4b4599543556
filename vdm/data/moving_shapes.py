"""TFDS builder `moving_shapes`: synthetic clips of coloured shapes whose truth is known.

No download: every example is rendered by `vdm.data.shapes_render` from (config, split,
index), so a build is deterministic and takes seconds. Stored as array_record for random
access through `tfds.data_source` (see `vdm.data.pipeline`). Only TF-free features are used
(`Tensor` with zlib encoding, `Text`).

Each example:
    video       uint8   [T, H, W, 3]
    caption     text    e.g. "a red circle moves left"
    num_objects int32   []
    shape       int32   [MAX_OBJECTS]    index into SHAPES, -1 padding
    color       int32   [MAX_OBJECTS]    index into COLOR_NAMES (COLORS), -1 padding
    size        int32   [MAX_OBJECTS]    sprite size in px, -1 padding
    direction   int32   [MAX_OBJECTS]    index into DIRECTION_NAMES, -1 padding
    speed       float32 [MAX_OBJECTS]    px/frame, -1 padding
    positions   float32 [MAX_OBJECTS, T, 2]  pixel centroid (y, x) per frame, -1 padding
    background  int32   []               index into BACKGROUNDS
and, in edit-pair configs (`edit=True`; the fields above describe the TARGET clip):
    source_video      uint8 [T, H, W, 3]   the clip before the edit (same trajectories)
    source_caption    text
    instruction       text    e.g. "make the circle blue"
    edit_kind         int32   []           index into EDIT_KINDS (color, shape, background)
    source_shape, source_color, source_size, source_direction  int32 [MAX_OBJECTS]
    source_speed float32 [MAX_OBJECTS], source_positions float32 [MAX_OBJECTS, T, 2],
    source_background int32 []

Usage:
    builder = build("quickstart", data_dir)          # builds once, then just opens
    source = builder.as_data_source(split="train")   # or vdm.data.pipeline.make_source
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from vdm.data.shapes_render import (  # noqa: F401  (re-exported for other modules)
    BACKGROUNDS,
    CAPTION_FACTORS,
    COLOR_NAMES,
    COLORS,
    DIRECTION_NAMES,
    DIRECTION_VECTORS,
    DIRECTIONS,
    EDIT_KINDS,
    MAX_OBJECTS,
    PALETTE,
    SHAPES,
    SceneParams,
    generate_edit_example,
    generate_example,
    make_caption,
)

NAME = "moving_shapes"
_SPLIT_SEEDS = {"train": 0, "test": 1}


@dataclasses.dataclass(eq=False)
class MovingShapesConfig(tfds.core.BuilderConfig):
    """A family of clips: `scene` sets frames, resolution and the factors that vary
    (difficulty); `num_train`/`num_test` the split sizes; `seed` the base seed (train and
    test examples are drawn from disjoint seed streams)."""

    scene: SceneParams = dataclasses.field(
        default_factory=lambda: SceneParams(num_frames=8, height=16, width=16)
    )
    num_train: int = 1024
    num_test: int = 128
    seed: int = 0
    edit: bool = False

    @property
    def num_frames(self) -> int:
        return self.scene.num_frames

    @property
    def resolution(self) -> tuple[int, int]:
        return self.scene.height, self.scene.width


CONFIGS: dict[str, MovingShapesConfig] = {
    c.name: c
    for c in [
        MovingShapesConfig(
            name="quickstart",
            description="16x16, 8 frames, one 5-6 px object at 1 px/frame in 8 directions, no "
            "bounce, black background; captions name colour, shape and direction (size "
            "jitters between 5 and 6 px and is not named).",
            scene=SceneParams(num_frames=8, height=16, width=16, sizes=(5, 6), speeds=(1.0,)),
            num_train=4096,
            num_test=256,
        ),
        MovingShapesConfig(
            name="t2v_32",
            description="32x32, 16 frames, one object of size 6/8/10 px at 1 or 1.4 px/frame "
            "in 8 directions, no bounce, black background; captions name size, colour, shape, "
            "direction and speed. (2 px/frame does not fit: 30 px of travel in 32 px.)",
            scene=SceneParams(
                num_frames=16,
                height=32,
                width=32,
                sizes=(6, 8, 10),
                speeds=(1.0, 1.4),
                caption_factors=("size", "color", "shape", "direction", "speed"),
            ),
            num_train=8192,
            num_test=512,
        ),
        MovingShapesConfig(
            name="hard_32",
            description="32x32, 16 frames, 1-3 non-overlapping objects of size 6/8/10 px at "
            "1/2/3 px/frame, bouncing off the walls, black/gradient/texture backgrounds; "
            "captions name every factor (direction = initial direction).",
            scene=SceneParams(
                num_frames=16,
                height=32,
                width=32,
                min_objects=1,
                max_objects=3,
                sizes=(6, 8, 10),
                speeds=(1.0, 2.0, 3.0),
                backgrounds=BACKGROUNDS,
                bounce=True,
                caption_factors=CAPTION_FACTORS,
            ),
            num_train=8192,
            num_test=512,
        ),
        MovingShapesConfig(
            name="hard_64",
            description="64x64, 32 frames, the hard_32 factors at cluster scale: 1-3 objects of "
            "size 8/12/16 px at 1/2/3 px/frame, bouncing, black/gradient/texture backgrounds.",
            scene=SceneParams(
                num_frames=32,
                height=64,
                width=64,
                min_objects=1,
                max_objects=3,
                sizes=(8, 12, 16),
                speeds=(1.0, 2.0, 3.0),
                backgrounds=BACKGROUNDS,
                bounce=True,
                caption_factors=CAPTION_FACTORS,
            ),
            num_train=100_000,
            num_test=1024,
        ),
        MovingShapesConfig(
            name="edit_16",
            description="Edit pairs at quickstart scale: 16x16, 8 frames, one 5-6 px object at 1 "
            "px/frame in 8 directions on a black/gradient/textured background; each example is a "
            "source clip, an instruction (recolour, reshape or change the background) and the "
            "target clip with identical trajectories. Captions name colour, shape, direction and "
            "background.",
            scene=SceneParams(
                num_frames=8, height=16, width=16, sizes=(5, 6), speeds=(1.0,),
                backgrounds=BACKGROUNDS,
                caption_factors=("color", "shape", "direction", "background"),
            ),
            num_train=4096,
            num_test=256,
            edit=True,
        ),
        MovingShapesConfig(
            name="edit_32",
            description="Edit pairs at t2v_32 scale: 32x32, 16 frames, 1-2 objects of 6/8/10 px "
            "at 1 or 1.4 px/frame on black/gradient/textured backgrounds.",
            scene=SceneParams(
                num_frames=16, height=32, width=32, min_objects=1, max_objects=2,
                sizes=(6, 8, 10), speeds=(1.0, 1.4), backgrounds=BACKGROUNDS,
                caption_factors=("size", "color", "shape", "direction", "background"),
            ),
            num_train=8192,
            num_test=512,
            edit=True,
        ),
        MovingShapesConfig(
            name="long_16",
            description="The quickstart scene at length: 16x16, 64 frames, one 5-6 px object at "
            "1 px/frame in 8 directions, bouncing off the walls, black background; captions name "
            "colour, shape and (initial) direction. For clip-length studies: a model takes the "
            "first data.num_frames frames.",
            scene=SceneParams(num_frames=64, height=16, width=16, sizes=(5, 6), speeds=(1.0,),
                              bounce=True),
            num_train=2048,
            num_test=128,
        ),
        MovingShapesConfig(
            name="edit_smoke",
            description="Tiny edit pairs, for tests: 16x16, 4 frames, 24 train / 8 test.",
            scene=SceneParams(num_frames=4, height=16, width=16, sizes=(5, 6), speeds=(1.0,),
                              backgrounds=BACKGROUNDS),
            num_train=24,
            num_test=8,
            edit=True,
        ),
        MovingShapesConfig(
            name="smoke",
            description="Tiny, for tests: 16x16, 4 frames, one object, 24 train / 8 test.",
            scene=SceneParams(num_frames=4, height=16, width=16, sizes=(5, 6), speeds=(1.0,)),
            num_train=24,
            num_test=8,
        ),
    ]
}


class MovingShapes(tfds.core.GeneratorBasedBuilder):
    """Synthetic moving shapes with per-clip ground truth."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = list(CONFIGS.values())
    DEFAULT_BUILDER_CONFIG_NAME = "quickstart"

    def __init__(self, *, file_format: str | None = "array_record", **kwargs):
        super().__init__(file_format=file_format, **kwargs)

    # TFDS locates a builder's source file (for its checksums file) through
    # `importlib_resources`, which this stack does not install; the file is right here.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        s: SceneParams = self.builder_config.scene
        T, H, W, K = s.num_frames, s.height, s.width, MAX_OBJECTS
        tensor = tfds.features.Tensor
        features = {
            "video": tensor(shape=(T, H, W, 3), dtype=np.uint8, encoding="zlib"),
            "caption": tfds.features.Text(),
            "num_objects": tensor(shape=(), dtype=np.int32),
        }
        truth = {
            "shape": tensor(shape=(K,), dtype=np.int32),
            "color": tensor(shape=(K,), dtype=np.int32),
            "size": tensor(shape=(K,), dtype=np.int32),
            "direction": tensor(shape=(K,), dtype=np.int32),
            "speed": tensor(shape=(K,), dtype=np.float32),
            "positions": tensor(shape=(K, T, 2), dtype=np.float32),
            "background": tensor(shape=(), dtype=np.int32),
        }
        features.update(truth)
        if self.builder_config.edit:
            features.update({f"source_{k}": v for k, v in truth.items()})
            features.update({
                "source_video": tensor(shape=(T, H, W, 3), dtype=np.uint8, encoding="zlib"),
                "source_caption": tfds.features.Text(),
                "instruction": tfds.features.Text(),
                "edit_kind": tensor(shape=(), dtype=np.int32),
            })
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            description=__doc__.split("\n\n")[0],
            # Stored order = generation order, so `source[i] == example(config, split, i)`.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in _SPLIT_SEEDS}

    def _generate_examples(self, split: str):
        config: MovingShapesConfig = self.builder_config
        count = config.num_train if split == "train" else config.num_test
        for i in range(count):
            yield f"{split}_{i:07d}", example(config, split, i)


def example(config: MovingShapesConfig | str, split: str, index: int) -> dict:
    """Example `index` of a split, rendered directly (identical to the stored one)."""
    config = CONFIGS[config] if isinstance(config, str) else config
    seed = (config.seed, _SPLIT_SEEDS[split], index)
    if config.edit:
        return generate_edit_example(config.scene, seed)
    return generate_example(config.scene, seed)


def config_spec(config_name: str) -> dict:
    """What a config stores, without building it: num_frames, height, width, num_train,
    num_test, min_objects, max_objects, bounce, caption_factors."""
    if config_name not in CONFIGS:
        raise ValueError(f"unknown moving_shapes config {config_name!r}; have {sorted(CONFIGS)}")
    config = CONFIGS[config_name]
    s = config.scene
    return {
        "num_frames": s.num_frames,
        "height": s.height,
        "width": s.width,
        "num_train": config.num_train,
        "num_test": config.num_test,
        "min_objects": s.min_objects,
        "max_objects": s.max_objects,
        "bounce": s.bounce,
        "caption_factors": s.caption_factors,
        "edit": config.edit,
    }


def build(config_name: str, data_dir: str | os.PathLike) -> MovingShapes:
    """The builder of `config_name` under `data_dir`, prepared if it is not yet (idempotent:
    an existing build is only opened). Build once before a multi-process run, e.g. with
    `tools/build_dataset.py`, rather than from every process at once."""
    if config_name not in CONFIGS:
        raise ValueError(f"unknown moving_shapes config {config_name!r}; have {sorted(CONFIGS)}")
    builder = MovingShapes(config=config_name, data_dir=os.fspath(data_dir))
    if not builder.is_prepared():
        builder.download_and_prepare()
    return builder
