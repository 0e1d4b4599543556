"""Grounded metrics for `moving_shapes` clips: score generated videos against the truth of
the prompts that produced them.

Pipeline, all numpy (no scipy):
1. Segment by colour: a pixel belongs to palette colour k when k is its nearest palette
   colour and the RGB distance is below `color_threshold` (default 100; every background
   grey is >= 200 from every palette colour, palette colours are >= 255 apart).
2. Connected components (8-connectivity) per frame and colour; components smaller than
   `min_area` px are ignored as specks.
3. For every prompted object (its colour identifies it) and frame: how many components of
   its colour, and the largest one's area, centroid, box and shape class.

Metrics (fractions are in [0, 1]; "frame-level" averages over clips x frames):
- color_adherence       frame-level: every prompted colour is present as an object.
- color_adherence_clip  clip-level: every prompted colour is present in every frame.
- shape_adherence       over (frame, prompted object): the object's largest component is
                        classified as the prompted shape (absent counts as wrong; chance 1/3).
- shape_recall/<shape>  the same over the objects prompted as that shape (only shapes that
                        were prompted): which shape the model misses.
- count_adherence       frame-level: exactly one component per prompted colour and no
                        component of any other palette colour.
- identity_consistency  clip-level: every object is present in every frame with one shape
                        class throughout and an area within +-30% of its median area.
- identity_lost/<cause> clip-level, why identity fails: an object is `absent` from some
                        frame, its `shape` class changes, or its `area` leaves the band.
                        A clip may fail for several causes (each over all clips).
- size_error            px, |max(box height, box width) - prompted size| (needs `size`).
- direction_adherence   over prompted objects: the least-squares centroid velocity is
                        nearest (of the 8 directions, i.e. within 22.5 degrees) to the
                        prompted direction (chance 1/8). Meaningful only while the object
                        does not bounce: with `positions` in the truth, the velocity is fitted
                        over the frames before the truth's first bounce (objects with fewer
                        than 3 such frames are left out); without, over all frames.
- speed_error           px/frame, |speed of that velocity - prompted speed| (needs `speed`).
- smoothness            px/frame^2, mean |second difference| of the centroid track over
                        consecutive present frames (lower is smoother; a bounce adds a spike).
- max_step              px/frame, mean over tracks of the largest frame-to-frame jump.

Shape classes, from the largest component's box (h x w) and pixels:
    fill  = area / (h * w)         square 1.0, circle 0.75-0.89, triangle 0.50-0.63
    taper = |bottom row width - top row width| / w     triangle >= 0.5, others ~0
    triangle if fill < 0.66 or (taper >= 0.4 and fill < 0.8); square if fill >= 0.93;
    circle otherwise.
"""
from __future__ import annotations

import numpy as np

from vdm.data.shapes_render import (
    COLOR_NAMES,
    DIRECTION_NAMES,
    DIRECTION_VECTORS,
    PALETTE,
    SHAPES,
)

COLOR_THRESHOLD = 100.0
MIN_AREA = 4
IDENTITY_TOLERANCE = 0.3
DIRECTION_CHANCE = 1.0 / len(DIRECTION_NAMES)
SHAPE_CHANCE = 1.0 / len(SHAPES)


# --------------------------------------------------------------------------------------------
# Segmentation


def to_uint8(videos: np.ndarray) -> np.ndarray:
    """uint8 videos as they are; float videos in [-1, 1] (model outputs) mapped to uint8."""
    videos = np.asarray(videos)
    if videos.dtype == np.uint8:
        return videos
    return np.clip(np.round((videos.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def segment_colors(
    videos: np.ndarray, palette: np.ndarray = PALETTE, threshold: float = COLOR_THRESHOLD
) -> np.ndarray:
    """Palette index of every pixel, -1 where no palette colour is within `threshold`.
    videos uint8 [..., H, W, 3] -> int8 [..., H, W]."""
    channels = [videos[..., c].astype(np.int32) for c in range(3)]
    best = np.full(videos.shape[:-1], np.iinfo(np.int32).max, np.int32)
    out = np.full(videos.shape[:-1], -1, np.int8)
    for k, rgb in enumerate(np.asarray(palette, np.int32)):
        d2 = sum((ch - int(v)) ** 2 for ch, v in zip(channels, rgb))
        closer = d2 < best
        best = np.where(closer, d2, best)
        out[closer] = k
    out[best >= threshold**2] = -1
    return out


_FORWARD_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))  # with their opposites: 8-connectivity


def label_components(classes: np.ndarray) -> np.ndarray:
    """Connected components (8-connectivity) of equal non-negative classes, per frame.

    classes int [F, H, W] (-1 = nothing) -> int64 [F, H, W]: for each pixel of a component
    the flat index of the component's first pixel (a unique id), -1 elsewhere. Min-label
    propagation with pointer jumping, vectorised over all frames.
    """
    F, H, W = classes.shape
    fg = classes >= 0
    big = F * H * W
    lab = np.where(fg, np.arange(big).reshape(F, H, W), big)
    links = []
    for dy, dx in _FORWARD_NEIGHBOURS:
        a = (slice(None), slice(0, H - dy), slice(max(0, -dx), W - max(0, dx)))
        b = (slice(None), slice(dy, H), slice(max(0, dx), W - max(0, -dx)))
        same = fg[a] & (classes[a] == classes[b])
        if same.any():
            links.append((a, b, same))
    flat = lab.reshape(-1)
    fg_idx = np.flatnonzero(fg)
    while True:
        before = flat[fg_idx].copy()
        for a, b, same in links:
            # Labels only ever decrease, so a pass with no change means every link joins
            # equal labels.
            m = np.where(same, np.minimum(lab[a], lab[b]), big)
            np.minimum(lab[a], m, out=lab[a])
            np.minimum(lab[b], m, out=lab[b])
        # Labels always point at a pixel of the same component with a label <= their own.
        while True:
            jumped = flat[flat[fg_idx]]
            if np.array_equal(jumped, flat[fg_idx]):
                break
            flat[fg_idx] = jumped
        if np.array_equal(before, flat[fg_idx]):
            break
    return np.where(fg, lab, -1)


# --------------------------------------------------------------------------------------------
# Objects


def classify_shape(fill: np.ndarray, taper: np.ndarray) -> np.ndarray:
    """Shape index (SHAPES) from fill ratio and taper; see the module docstring."""
    fill, taper = np.asarray(fill, np.float64), np.asarray(taper, np.float64)
    triangle = (fill < 0.66) | ((taper >= 0.4) & (fill < 0.8))
    square = fill >= 0.93
    other = np.where(square, SHAPES.index("square"), SHAPES.index("circle"))
    return np.where(triangle, SHAPES.index("triangle"), other).astype(np.int32)


def measure_objects(
    videos: np.ndarray,
    colors: np.ndarray,
    num_objects: np.ndarray,
    *,
    color_threshold: float = COLOR_THRESHOLD,
    min_area: int = MIN_AREA,
) -> dict[str, np.ndarray]:
    """Per (clip, frame, prompted object j) measurements of the components of colour
    `colors[:, j]` (only j < num_objects is meaningful):

        count    int   [N, T, J]   components of area >= min_area
        area     int   [N, T, J]   area of the largest one (0 if none)
        centroid float [N, T, J, 2] its (y, x) centroid (nan if none)
        extent   int   [N, T, J]   max(box height, box width) (0 if none)
        shape    int   [N, T, J]   its shape class (-1 if none)
        strays   int   [N, T]      components of non-prompted palette colours
    """
    videos = to_uint8(videos)
    N, T, H, W, _ = videos.shape
    colors = np.asarray(colors, np.int64)
    J = colors.shape[1]
    K = len(PALETTE)
    classes = segment_colors(videos, PALETTE, color_threshold).reshape(N * T, H, W)
    labels = label_components(classes)

    fg = labels >= 0
    root = labels[fg]
    frame_of_pixel, ys, xs = np.nonzero(fg)
    ids, inv = np.unique(root, return_inverse=True)
    n_comp = len(ids)
    area = np.bincount(inv, minlength=n_comp)
    comp_frame = ids // (H * W)
    comp_class = classes.reshape(-1)[ids].astype(np.int64)
    sum_y = np.bincount(inv, weights=ys, minlength=n_comp)
    sum_x = np.bincount(inv, weights=xs, minlength=n_comp)
    y0 = np.full(n_comp, H)
    y1 = np.full(n_comp, -1)
    x0 = np.full(n_comp, W)
    x1 = np.full(n_comp, -1)
    np.minimum.at(y0, inv, ys)
    np.maximum.at(y1, inv, ys)
    np.minimum.at(x0, inv, xs)
    np.maximum.at(x1, inv, xs)
    top = np.bincount(inv, weights=(ys == y0[inv]), minlength=n_comp)
    bottom = np.bincount(inv, weights=(ys == y1[inv]), minlength=n_comp)
    h, w = y1 - y0 + 1, x1 - x0 + 1
    fill = area / np.maximum(h * w, 1)
    comp_shape = classify_shape(fill, np.abs(bottom - top) / np.maximum(w, 1))

    big = area >= min_area
    # Counts of real components per (frame, palette colour).
    counts = np.zeros((N * T, K), np.int64)
    np.add.at(counts, (comp_frame[big], comp_class[big]), 1)
    # The largest component per (frame, colour): sort by (frame, colour, area), keep the last.
    order = np.lexsort((area, comp_class, comp_frame))
    key = comp_frame[order] * K + comp_class[order]
    last = np.ones(len(key), bool)  # empty when no frame has a component (blank clips)
    last[:-1] = key[1:] != key[:-1]
    largest = np.full(N * T * K, -1, np.int64)
    largest[key[last]] = order[last]
    largest = largest.reshape(N * T, K)

    prompted = np.zeros((N, K), bool)
    valid = np.arange(J)[None, :] < np.asarray(num_objects)[:, None]
    for j in range(J):
        prompted[np.arange(N)[valid[:, j]], colors[valid[:, j], j]] = True

    col = np.clip(colors, 0, K - 1)  # padding (-1) is masked by `valid` downstream
    frame_idx = np.arange(N * T).reshape(N, T)
    cnt = counts[frame_idx[:, :, None], col[:, None, :]]  # [N, T, J]
    comp = largest[frame_idx[:, :, None], col[:, None, :]]
    has = (comp >= 0) & (cnt > 0)
    # Where there is none, index one appended "absent" component (area 0, extent 0, shape -1):
    # it exists even when no frame has any component.
    c = np.where(has, comp, n_comp)
    area = np.r_[area, 0]
    strays = np.where(prompted[:, None, :], 0, counts.reshape(N, T, K)).sum(-1)
    centroid = np.stack([np.r_[sum_y, 0][c], np.r_[sum_x, 0][c]], -1) / np.maximum(area[c], 1)[..., None]
    return {
        "count": cnt,
        "area": area[c],
        "centroid": np.where(has[..., None], centroid, np.nan),
        "extent": np.r_[np.maximum(h, w), 0][c],
        "shape": np.r_[comp_shape, -1][c],
        "strays": strays,
    }


# --------------------------------------------------------------------------------------------
# Motion


def _direction_windows(positions: np.ndarray, direction: np.ndarray, T: int) -> np.ndarray:
    """Frames [N, J] before the truth's first bounce. A bounce shows as the first step that
    moves against the prompted direction on an axis the direction moves along; the wall may
    have been hit during that step or the one before (rounded to whole pixels, the step that
    holds the bounce need not look reversed), so the window ends before both."""
    N, J = direction.shape
    if positions is None:
        return np.full((N, J), T)
    steps = np.diff(np.asarray(positions, np.float64), axis=2)  # [N, J, T-1, 2]
    sign = np.sign(DIRECTION_VECTORS[np.clip(direction, 0, None)])  # [N, J, 2]
    sign = np.where(np.abs(DIRECTION_VECTORS[np.clip(direction, 0, None)]) < 1e-6, 0, sign)
    against = ((steps * sign[:, :, None, :]) < -1e-6).any(-1)  # [N, J, T-1]
    return np.where(against.any(-1), against.argmax(-1), T)


def _fit_velocity(track: np.ndarray, frames: int) -> tuple[np.ndarray, bool]:
    """Least-squares velocity (dy, dx) over the first `frames` frames' present centroids."""
    t = np.arange(frames, dtype=np.float64)
    p = track[:frames]
    ok = ~np.isnan(p[:, 0])
    if ok.sum() < 2:
        return np.zeros(2), False
    tt = t[ok] - t[ok].mean()
    return (tt[:, None] * (p[ok] - p[ok].mean(0))).sum(0) / (tt**2).sum(), True


# --------------------------------------------------------------------------------------------
# Metrics


def grounded_metrics(
    videos: np.ndarray,
    truth: dict[str, np.ndarray],
    *,
    color_threshold: float = COLOR_THRESHOLD,
    min_area: int = MIN_AREA,
    identity_tolerance: float = IDENTITY_TOLERANCE,
) -> dict[str, float]:
    """Score videos uint8 [N, T, H, W, 3] (or float in [-1, 1]) against their prompts' truth:
    `num_objects` [N], `shape`, `color`, `direction` [N, J]; optional `size` [N, J] (px),
    `speed` [N, J] (px/frame), `positions` [N, J, T, 2] (truth centroids, used to find the
    pre-bounce window). Keys as stored by `moving_shapes` (J = MAX_OBJECTS, -1 padding)."""
    videos = to_uint8(videos)
    N, T = videos.shape[:2]
    num = np.asarray(truth["num_objects"]).reshape(N)
    color = np.asarray(truth["color"]).reshape(N, -1)
    shape = np.asarray(truth["shape"]).reshape(N, -1)
    direction = np.asarray(truth["direction"]).reshape(N, -1)
    J = color.shape[1]
    valid = np.arange(J)[None, :] < num[:, None]  # [N, J]
    m = measure_objects(videos, color, num, color_threshold=color_threshold, min_area=min_area)

    present = m["count"] >= 1  # [N, T, J]
    vmask = valid[:, None, :]
    all_present = (present | ~vmask).all(-1)  # [N, T]
    exact = ((m["count"] == 1) | ~vmask).all(-1) & (m["strays"] == 0)
    shape_ok = (m["shape"] == shape[:, None, :]) & present

    def over_objects(x):  # mean over (clip, frame, valid object)
        return float(x[np.broadcast_to(vmask, x.shape)].mean())

    # Identity: same colour (present), one shape class, area within tolerance of the median.
    area = m["area"].astype(np.float64)
    med = np.median(area, axis=1, keepdims=True)  # absent frames fail `present` anyway
    area_ok = np.abs(area - med) <= identity_tolerance * med
    same_shape = (m["shape"] == m["shape"][:, :1]).all(1)  # [N, J]
    obj_identity = present.all(1) & same_shape & area_ok.all(1)
    identity = (obj_identity | ~valid).all(-1)
    lost = lambda ok: float((~ok & valid).any(-1).mean())  # ok [N, J] -> clips where some object fails

    out = {
        "color_adherence": float(all_present.mean()),
        "color_adherence_clip": float(all_present.all(1).mean()),
        "shape_adherence": over_objects(shape_ok),
        "shape_chance": SHAPE_CHANCE,
        "count_adherence": float(exact.mean()),
        "identity_consistency": float(identity.mean()),
        "identity_lost/absent": lost(present.all(1)),
        "identity_lost/shape": lost(same_shape),
        "identity_lost/area": lost(area_ok.all(1)),
    }
    # Per prompted shape. At 5-6 px a square and a circle differ by their four corner pixels,
    # so a square with soft corners reads as a circle: the recall says which shape is missed.
    for k, name in enumerate(SHAPES):
        sel = np.broadcast_to(vmask & (shape[:, None, :] == k), shape_ok.shape)
        if sel.any():
            out[f"shape_recall/{name}"] = float(shape_ok[sel].mean())
    if "size" in truth:
        size = np.asarray(truth["size"]).reshape(N, J)
        err = np.abs(m["extent"] - size[:, None, :]).astype(np.float64)
        sel = present & vmask
        out["size_error"] = float(err[sel].mean()) if sel.any() else float("nan")

    # Motion, per prompted object.
    windows = _direction_windows(truth.get("positions"), direction, T)
    vel_unit = DIRECTION_VECTORS
    dir_ok, speed_err, smooth, max_step = [], [], [], []
    speed = np.asarray(truth["speed"]).reshape(N, J) if "speed" in truth else None
    for i in range(N):
        for j in range(int(num[i])):
            track = m["centroid"][i, :, j]
            if windows[i, j] >= 3:
                v, ok = _fit_velocity(track, int(windows[i, j]))
                norm = float(np.hypot(*v))
                hit = ok and norm > 1e-6 and int(np.argmax(vel_unit @ v)) == direction[i, j]
                dir_ok.append(hit)
                if speed is not None and ok:
                    speed_err.append(abs(norm - float(speed[i, j])))
            d1 = np.diff(track, axis=0)
            step = np.hypot(d1[:, 0], d1[:, 1])
            if np.isfinite(step).any():
                max_step.append(np.nanmax(step))
            d2 = np.diff(track, n=2, axis=0)
            acc = np.hypot(d2[:, 0], d2[:, 1])
            if np.isfinite(acc).any():
                smooth.append(np.nanmean(acc))
    nan = float("nan")
    out["direction_adherence"] = float(np.mean(dir_ok)) if dir_ok else nan
    out["direction_chance"] = DIRECTION_CHANCE
    if speed is not None:
        out["speed_error"] = float(np.mean(speed_err)) if speed_err else nan
    out["smoothness"] = float(np.mean(smooth)) if smooth else nan
    out["max_step"] = float(np.mean(max_step)) if max_step else nan
    return out


_SHORT = {
    "color_adherence": "color",
    "color_adherence_clip": "color_clip",
    "shape_adherence": "shape",
    "count_adherence": "count",
    "identity_consistency": "identity",
    "size_error": "size_err",
    "direction_adherence": "direction",
    "speed_error": "speed_err",
    "smoothness": "smooth",
    "max_step": "max_step",
}


def format_metrics(metrics: dict[str, float]) -> str:
    """One line, e.g. 'color 1.00 | shape 0.98 | count 1.00 | ... | direction 1.00 (chance
    0.12) | speed_err 0.05 px/f | smooth 0.31 px/f²'."""
    parts = []
    for key, short in _SHORT.items():
        if key not in metrics:
            continue
        value = metrics[key]
        text = f"{short} {value:.2f}"
        if key == "direction_adherence":
            text += f" (chance {metrics.get('direction_chance', DIRECTION_CHANCE):.2f})"
        elif key == "shape_adherence":
            text += f" (chance {metrics.get('shape_chance', SHAPE_CHANCE):.2f})"
        elif key in ("size_error",):
            text += " px"
        elif key in ("speed_error", "max_step"):
            text += " px/f"
        elif key == "smoothness":
            text += " px/f²"
        parts.append(text)
    return " | ".join(parts)


__all__ = [
    "COLOR_NAMES",
    "grounded_metrics",
    "format_metrics",
    "measure_objects",
    "segment_colors",
    "label_components",
    "classify_shape",
    "to_uint8",
]
