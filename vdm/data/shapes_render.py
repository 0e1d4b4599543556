"""Moving-shapes clips in pure numpy: palette, sprites, trajectories, backgrounds, captions.

Everything here is deterministic given a `np.random.Generator`, has no TFDS or JAX
dependency, and is shared by the TFDS builder (`vdm.data.moving_shapes`), the grounded
metrics (`vdm.evaluation.grounded`) and anything that needs prompts with known truth.

Conventions
- Images are uint8 [T, H, W, 3]; coordinates are (y, x) with y pointing down, in pixels,
  where pixel (i, j) has its centre at (i, j).
- Objects are stamped sprites: a fixed boolean template of `size` x `size` pixels per
  (shape, size), placed at an integer top-left corner. The same object therefore has the same
  pixels in every frame, and the stored position is the exact centroid of its pixels.
- Continuous motion: the sprite's top-left corner moves by `speed * DIRECTIONS[d]` per frame
  and is rounded to the pixel grid for drawing (diagonal motion at 1 px/frame moves in
  whole-pixel steps whose average is the true velocity).
- Objects in one clip have distinct colours and never overlap (their boxes are disjoint in
  every frame), so colour segmentation recovers each object exactly.
- Backgrounds are greys (R = G = B, values <= 110), at RGB distance >= 200 from every palette
  colour.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

MAX_OBJECTS = 3

SHAPES: tuple[str, ...] = ("square", "circle", "triangle")

# Pure, well-separated colours: every pair is >= 255 apart in RGB, every grey is >= 200 away.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "white": (255, 255, 255),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
PALETTE = np.array([COLORS[c] for c in COLOR_NAMES], np.uint8)  # [K, 3], index = colour id

_D = float(np.sqrt(0.5))
# Unit (dy, dx) vectors, y pointing down; index k is the angle k * 45 degrees counter-clockwise
# from "right" as seen on screen.
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (0.0, 1.0),
    "up-right": (-_D, _D),
    "up": (-1.0, 0.0),
    "up-left": (-_D, -_D),
    "left": (0.0, -1.0),
    "down-left": (_D, -_D),
    "down": (1.0, 0.0),
    "down-right": (_D, _D),
}
DIRECTION_NAMES: tuple[str, ...] = tuple(DIRECTIONS)
DIRECTION_VECTORS = np.array([DIRECTIONS[d] for d in DIRECTION_NAMES], np.float64)  # [8, 2]

BACKGROUNDS: tuple[str, ...] = ("black", "gradient", "texture")
BACKGROUND_WORDS = {"black": "black", "gradient": "gradient", "texture": "textured"}
GREY_RANGE = (16, 96)  # grey levels of gradients and textures (texture noise adds <= 14)

# Words for ranked factor values, by how many values a config allows.
SIZE_WORDS = {2: ("small", "large"), 3: ("small", "medium", "large")}
SPEED_WORDS = {2: ("slowly", "quickly"), 3: ("slowly", "steadily", "quickly")}
CAPTION_FACTORS = ("size", "color", "shape", "direction", "speed", "background")


# --------------------------------------------------------------------------------------------
# Sprites


def shape_mask(shape: str | int, size: int) -> np.ndarray:
    """The boolean [size, size] sprite of a shape; its bounding box is exactly size x size.

    square: every pixel (fill ratio 1); circle: pixel centres within size/2 of the centre
    (fill 0.75-0.89 for sizes 4-12); triangle: pointing up, apex 1-2 px wide, base the full
    width, widths growing by 2 every other row (fill 0.50-0.63).
    """
    name = SHAPES[shape] if isinstance(shape, (int, np.integer)) else shape
    return _shape_mask(name, int(size)).copy()


@functools.lru_cache(maxsize=None)
def _shape_mask(name: str, size: int) -> np.ndarray:
    if size < 3:
        raise ValueError(f"size must be >= 3 px, got {size}")
    if name == "square":
        return np.ones((size, size), bool)
    if name == "circle":
        c = np.arange(size) + 0.5 - size / 2
        return c[:, None] ** 2 + c[None, :] ** 2 <= (size / 2) ** 2
    if name == "triangle":
        mask = np.zeros((size, size), bool)
        widths = np.arange(2 - size % 2, size + 1, 2)  # widths with the parity of size
        for r in range(size):
            w = widths[np.argmin(np.abs(widths - (r + 0.5)))]  # ties -> narrower
            a = (size - w) // 2
            mask[r, a : a + w] = True
        return mask
    raise ValueError(f"unknown shape {name!r}; expected one of {SHAPES}")


def sprite_centroid(shape: str | int, size: int) -> np.ndarray:
    """(y, x) centroid of the sprite's pixels relative to its top-left pixel."""
    name = SHAPES[shape] if isinstance(shape, (int, np.integer)) else shape
    return _sprite_centroid(name, int(size)).copy()


@functools.lru_cache(maxsize=None)
def _sprite_centroid(name: str, size: int) -> np.ndarray:
    ys, xs = np.nonzero(_shape_mask(name, size))
    return np.array([ys.mean(), xs.mean()])


# --------------------------------------------------------------------------------------------
# Scene parameters (what a dataset config varies)


@dataclasses.dataclass(frozen=True)
class SceneParams:
    """The factors a family of clips draws from. Names index SHAPES, COLORS, DIRECTIONS,
    BACKGROUNDS; sizes are sprite sizes in px and speeds are px/frame, each listed in
    increasing order (their rank names them: small/medium/large, slowly/steadily/quickly).
    """

    num_frames: int
    height: int
    width: int
    min_objects: int = 1
    max_objects: int = 1
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = COLOR_NAMES
    sizes: tuple[int, ...] = (5, 6)
    speeds: tuple[float, ...] = (1.0,)
    directions: tuple[str, ...] = DIRECTION_NAMES
    backgrounds: tuple[str, ...] = ("black",)
    bounce: bool = False
    caption_factors: tuple[str, ...] = ("color", "shape", "direction")

    def __post_init__(self):
        def check_names(values, allowed, what):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise ValueError(f"{what} must be a non-empty subset of {allowed}, got {values}")

        check_names(self.shapes, SHAPES, "shapes")
        check_names(self.colors, COLOR_NAMES, "colors")
        check_names(self.directions, DIRECTION_NAMES, "directions")
        check_names(self.backgrounds, BACKGROUNDS, "backgrounds")
        check_names(self.caption_factors, CAPTION_FACTORS, "caption_factors")
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS}")
        if self.max_objects > len(self.colors):
            raise ValueError("objects in a clip have distinct colours: need more colours")
        if list(self.sizes) != sorted(set(self.sizes)) or list(self.speeds) != sorted(
            set(self.speeds)
        ):
            raise ValueError("sizes and speeds must be strictly increasing")
        if max(self.sizes) > min(self.height, self.width):
            raise ValueError("largest sprite does not fit the frame")
        for factor, values, words in (
            ("size", self.sizes, SIZE_WORDS),
            ("speed", self.speeds, SPEED_WORDS),
        ):
            if factor in self.caption_factors and len(values) not in words:
                raise ValueError(f"captioning {factor} needs {sorted(words)} values")
        if not self.bounce:
            # Without bounce, every start must exist from which the object stays inside.
            travel = max(self.speeds) * (self.num_frames - 1)
            for d in self.directions:
                dy, dx = DIRECTIONS[d]
                room_y = self.height - max(self.sizes)
                room_x = self.width - max(self.sizes)
                if abs(dy) * travel > room_y + 1e-9 or abs(dx) * travel > room_x + 1e-9:
                    raise ValueError(
                        f"without bounce an object of size {max(self.sizes)} moving "
                        f"{travel:.1f} px {d} leaves a {self.height}x{self.width} frame; "
                        "lower speeds, sizes or frames, or set bounce=True"
                    )


# --------------------------------------------------------------------------------------------
# Backgrounds


def render_background(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A static uint8 [H, W, 3] grey background."""
    if kind == "black":
        grey = np.zeros((height, width))
    elif kind == "gradient":
        lo, hi = GREY_RANGE
        g0 = rng.uniform(lo, hi - 32)
        g1 = rng.uniform(g0 + 32, hi)
        angle = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:height, 0:width]
        proj = np.cos(angle) * x / max(width - 1, 1) + np.sin(angle) * y / max(height - 1, 1)
        proj = (proj - proj.min()) / max(proj.max() - proj.min(), 1e-9)
        grey = g0 + (g1 - g0) * proj
    elif kind == "texture":
        lo, hi = GREY_RANGE
        cells = int(rng.integers(3, 7))
        coarse = rng.uniform(lo, hi, size=(cells, cells))
        ry = (np.arange(height) * cells) // height
        rx = (np.arange(width) * cells) // width
        grey = coarse[ry][:, rx] + rng.uniform(-14, 14, size=(height, width))
    else:
        raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
    grey = np.clip(np.round(grey), 0, 110).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


# --------------------------------------------------------------------------------------------
# Trajectories


def _reflect(x: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Fold positions into [0, hi] as a ball bouncing off both walls."""
    span = np.maximum(hi, 1e-9)
    y = np.mod(x, 2 * span)
    return np.where(hi > 0, np.where(y > span, 2 * span - y, y), 0.0)


def _max_corner(size, params: SceneParams) -> np.ndarray:
    """[..., 2] the largest top-left corner (y, x) that keeps an object of ``size`` in the frame."""
    size = np.asarray(size)
    return np.stack(np.broadcast_arrays(params.height - size, params.width - size), -1).astype(np.float64)


def start_bounds(velocity: np.ndarray, size, params: SceneParams) -> tuple[np.ndarray, np.ndarray]:
    """(lo, up) [..., 2]: the top-left corners (y, x) from which an object of ``size`` moving at
    ``velocity`` [..., 2] px/frame stays inside the frame for the whole clip (no bounce)."""
    disp = velocity * (params.num_frames - 1)
    return -np.minimum(disp, 0.0), _max_corner(size, params) - np.maximum(disp, 0.0)


def _sample_objects(rng: np.random.Generator, params: SceneParams, n: int) -> dict:
    """`n` candidate objects (shape, size, direction, speed and their integer sprite corners
    [n, T, 2]), drawn independently; without bounce each stays inside the frame."""
    pick = lambda values: np.asarray(values)[rng.integers(len(values), size=n)]  # noqa: E731
    shape = np.array([SHAPES.index(s) for s in pick(params.shapes)], np.int64)
    size = pick(params.sizes).astype(np.int64)
    direction = np.array([DIRECTION_NAMES.index(d) for d in pick(params.directions)], np.int64)
    speed = pick(params.speeds).astype(np.float64)
    velocity = speed[:, None] * DIRECTION_VECTORS[direction]  # [n, 2]
    hi = _max_corner(size, params)  # [n, 2]
    u = rng.uniform(0.0, 1.0, size=(n, 2))
    if params.bounce:
        start = u * hi
    else:
        lo_start, up_start = start_bounds(velocity, size, params)
        # SceneParams validated that this interval is non-empty (max() only absorbs float slack).
        start = lo_start + u * np.maximum(up_start - lo_start, 0.0)
    t = np.arange(params.num_frames, dtype=np.float64)[None, :, None]
    path = start[:, None, :] + t * velocity[:, None, :]  # [n, T, 2]
    if params.bounce:
        path = _reflect(path, hi[:, None, :])
    corners = np.floor(path + 0.5).astype(np.int64)
    assert ((corners >= 0) & (corners <= hi[:, None, :])).all(), "object left the frame"
    return dict(shape=shape, size=size, direction=direction, speed=speed, corners=corners)


def _overlaps(corners: np.ndarray, size: np.ndarray, other: np.ndarray, other_size: int):
    """[n] whether each candidate's box (corners [n, T, 2]) shares a pixel with another
    object's box (other [T, 2]) in any frame."""
    s = size[:, None, None]
    apart = (corners + s <= other[None]) | (other[None] + other_size <= corners)
    return (~apart.any(-1)).any(-1)


# --------------------------------------------------------------------------------------------
# Scenes and clips


def sample_scene(
    rng: np.random.Generator, params: SceneParams, candidates: int = 32, rounds: int = 8
) -> dict:
    """Draw the truth of one clip: the per-example fields the dataset stores, except the
    video and the caption. Object fields are padded to MAX_OBJECTS with -1.

    Objects are placed one after another; each is the first of `candidates` independent
    draws whose box never overlaps the objects already placed. If `rounds` batches of
    candidates all fail (a crowded frame), the clip keeps the objects placed so far.
    """
    T = params.num_frames
    n = int(rng.integers(params.min_objects, params.max_objects + 1))
    background = BACKGROUNDS.index(params.backgrounds[rng.integers(len(params.backgrounds))])
    colors = rng.choice(len(params.colors), size=n, replace=False)
    placed: list[dict] = []
    for _ in range(n):
        for _ in range(rounds):
            cand = _sample_objects(rng, params, candidates if placed else 1)
            ok = np.ones(len(cand["size"]), bool)
            for obj in placed:
                ok &= ~_overlaps(cand["corners"], cand["size"], obj["corners"], obj["size"])
            if ok.any():
                i = int(np.argmax(ok))
                placed.append({k: v[i] for k, v in cand.items()})
                break
        else:
            break
    n = len(placed)

    pad_i = lambda: np.full(MAX_OBJECTS, -1, np.int32)  # noqa: E731
    truth = {
        "num_objects": np.int32(n),
        "shape": pad_i(),
        "color": pad_i(),
        "size": pad_i(),
        "direction": pad_i(),
        "speed": np.full(MAX_OBJECTS, -1.0, np.float32),
        "positions": np.full((MAX_OBJECTS, T, 2), -1.0, np.float32),
        "background": np.int32(background),
    }
    for i, obj in enumerate(placed):
        truth["shape"][i] = obj["shape"]
        truth["color"][i] = COLOR_NAMES.index(params.colors[colors[i]])
        truth["size"][i] = obj["size"]
        truth["direction"][i] = obj["direction"]
        truth["speed"][i] = obj["speed"]
        centroid = _sprite_centroid(SHAPES[obj["shape"]], int(obj["size"]))
        truth["positions"][i] = obj["corners"] + centroid
    return truth


def render_video(truth: dict, background_image: np.ndarray) -> np.ndarray:
    """Draw the objects of `truth` over a static background: uint8 [T, H, W, 3]."""
    T = truth["positions"].shape[1]
    video = np.repeat(background_image[None], T, axis=0).copy()
    for i in range(int(truth["num_objects"])):
        shape, size = int(truth["shape"][i]), int(truth["size"][i])
        mask = _shape_mask(SHAPES[shape], size)
        corners = np.floor(truth["positions"][i] - _sprite_centroid(SHAPES[shape], size) + 0.5)
        corners = corners.astype(int)
        rgb = PALETTE[truth["color"][i]]
        for t, (r, c) in enumerate(corners):
            video[t, r : r + size, c : c + size][mask] = rgb
    return video


def _rank_word(value, values: Sequence, words: dict) -> str:
    return words[len(values)][list(values).index(value)]


def make_caption(truth: dict, params: SceneParams) -> str:
    """The caption of a clip, in a fixed grammar naming only `params.caption_factors`:

        caption := phrase ("," phrase)* [" and " phrase] [" on a <bg> background"]
        phrase  := "a " [size " "] [colour " "] shape " moves " direction [" " speed]

    e.g. "a red circle moves left", "a small blue square moves up-right quickly",
    "a red circle moves left and a green triangle moves down on a textured background".
    Without "shape" in the factors the noun is "shape".
    """
    f = params.caption_factors
    phrases = []
    for i in range(int(truth["num_objects"])):
        words = ["a"]
        if "size" in f:
            words.append(_rank_word(int(truth["size"][i]), params.sizes, SIZE_WORDS))
        if "color" in f:
            words.append(COLOR_NAMES[truth["color"][i]])
        words.append(SHAPES[truth["shape"][i]] if "shape" in f else "shape")
        words.append("moves")
        if "direction" in f:
            words.append(DIRECTION_NAMES[truth["direction"][i]])
        if "speed" in f:
            speed = min(params.speeds, key=lambda s: abs(s - float(truth["speed"][i])))
            words.append(_rank_word(speed, params.speeds, SPEED_WORDS))
        phrases.append(" ".join(words))
    text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    if "background" in f:
        text += f" on a {BACKGROUND_WORDS[BACKGROUNDS[int(truth['background'])]]} background"
    return text


def generate_example(params: SceneParams, seed: Sequence[int] | int) -> dict:
    """One complete example (truth, `video`, `caption`), a pure function of (params, seed)."""
    rng = np.random.default_rng(seed)
    truth = sample_scene(rng, params)
    background = render_background(
        BACKGROUNDS[int(truth["background"])], params.height, params.width, rng
    )
    video = render_video(truth, background)
    return {**truth, "video": video, "caption": make_caption(truth, params)}


# --------------------------------------------------------------------------------------------
# Edit pairs

EDIT_KINDS: tuple[str, ...] = ("color", "shape", "background")
TRUTH_FIELDS = ("num_objects", "shape", "color", "size", "direction", "speed", "positions",
                "background")


def _object_noun(truth: dict, i: int) -> str:
    """'circle' with one object; 'red circle' when several objects need telling apart."""
    shape = SHAPES[truth["shape"][i]]
    if int(truth["num_objects"]) == 1:
        return shape
    return f"{COLOR_NAMES[truth['color'][i]]} {shape}"


def edit_kinds_possible(params: SceneParams) -> tuple[str, ...]:
    """The edits a scene family allows (another colour, shape or background to change to)."""
    kinds = []
    if len(params.colors) > params.max_objects:
        kinds.append("color")
    if len(params.shapes) > 1:
        kinds.append("shape")
    if len(params.backgrounds) > 1:
        kinds.append("background")
    return tuple(kinds)


def make_edit(truth: dict, background_image: np.ndarray, params: SceneParams,
              rng: np.random.Generator, kinds: Sequence[str] = EDIT_KINDS):
    """Draw one edit of a source clip: (kind, instruction, target truth, target background).

    The target keeps every trajectory: colour and background edits change no object pixel
    position; a shape edit keeps each sprite's box where the source centroid puts it (the
    new sprite's centroid differs from the old one's by the sprites' centroid offsets,
    < 1 px), clamped inside the frame.

        color       "make the circle blue"              one object gets an unused colour
        shape       "turn the square into a triangle"   one object gets another shape
        background  "change the background to a gradient"
    """
    kinds = [k for k in kinds if k in edit_kinds_possible(params)]
    if not kinds:
        raise ValueError(f"scene family allows none of the edits {EDIT_KINDS}")
    kind = kinds[int(rng.integers(len(kinds)))]
    target = {k: np.array(v, copy=True) for k, v in truth.items()}
    n = int(truth["num_objects"])
    i = int(rng.integers(n))
    noun = _object_noun(truth, i)
    new_background = background_image
    if kind == "color":
        used = {int(c) for c in truth["color"][:n]}
        free = [COLOR_NAMES.index(c) for c in params.colors if COLOR_NAMES.index(c) not in used]
        new = free[int(rng.integers(len(free)))]
        target["color"][i] = new
        instruction = f"make the {noun} {COLOR_NAMES[new]}"
    elif kind == "shape":
        old = int(truth["shape"][i])
        choices = [SHAPES.index(s) for s in params.shapes if SHAPES.index(s) != old]
        new = choices[int(rng.integers(len(choices)))]
        size = int(truth["size"][i])
        hi = np.array([params.height - size, params.width - size])
        corners = np.floor(truth["positions"][i] - _sprite_centroid(SHAPES[new], size) + 0.5)
        corners = np.clip(corners, 0, hi)
        target["shape"][i] = new
        target["positions"][i] = corners + _sprite_centroid(SHAPES[new], size)
        instruction = f"turn the {noun} into a {SHAPES[new]}"
    else:
        old = int(truth["background"])
        choices = [BACKGROUNDS.index(b) for b in params.backgrounds if BACKGROUNDS.index(b) != old]
        new = choices[int(rng.integers(len(choices)))]
        target["background"] = np.int32(new)
        new_background = render_background(BACKGROUNDS[new], params.height, params.width, rng)
        article = "a " if BACKGROUNDS[new] != "black" else ""
        instruction = f"change the background to {article}{BACKGROUND_WORDS[BACKGROUNDS[new]]}"
    return kind, instruction, target, new_background


def generate_edit_example(params: SceneParams, seed: Sequence[int] | int,
                          kinds: Sequence[str] = EDIT_KINDS) -> dict:
    """An edit pair, a pure function of (params, seed): the target clip and its truth under
    the usual keys (`video`, `caption`, truth fields), the source under `source_*` keys,
    plus `instruction` and `edit_kind` (index into EDIT_KINDS)."""
    rng = np.random.default_rng(seed)
    truth = sample_scene(rng, params)
    background = render_background(
        BACKGROUNDS[int(truth["background"])], params.height, params.width, rng
    )
    kind, instruction, target, target_background = make_edit(truth, background, params, rng, kinds)
    out = {**target, "video": render_video(target, target_background),
           "caption": make_caption(target, params)}
    out.update({f"source_{k}": v for k, v in truth.items() if k != "num_objects"})
    out["source_video"] = render_video(truth, background)
    out["source_caption"] = make_caption(truth, params)
    out["instruction"] = instruction
    out["edit_kind"] = np.int32(EDIT_KINDS.index(kind))
    return out
