"""Condition inputs from files, fitted to a model: images, clips to continue, clips to edit.

Files are decoded by `vdm.video_io` (which names the file and the problem when it cannot);
here they are fitted to the model's resolution and clip length. A size mismatch is
fixed by a centre crop to the model's aspect ratio and an area resize, with a warning
(never silently); a clip with too few frames is an error naming both numbers.

    --image PNG[@frame]    one frame at a position (default 0; -1 = the last frame)
    --frames VIDEO:k       the first k frames of VIDEO, to be continued
    --source VIDEO         a clip to edit (its first T frames)
"""
from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from vdm import video_io


def fit_frames(frames: np.ndarray, height: int, width: int, what: str) -> np.ndarray:
    """uint8 [t, h, w, 3] -> [t, height, width, 3]: centre crop to the aspect ratio, then an
    area resize; warns when it changes anything."""
    t, h, w, _ = frames.shape
    if (h, w) == (height, width):
        return frames
    # The largest centred window with the model's aspect ratio.
    if h * width > w * height:
        ch, cw = max(1, round(w * height / width)), w
    else:
        ch, cw = h, max(1, round(h * width / height))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    warnings.warn(f"{what}: {h}x{w} frames cropped to {ch}x{cw} and resized to the model's "
                  f"{height}x{width}", stacklevel=2)
    out = [np.asarray(Image.fromarray(f[y0:y0 + ch, x0:x0 + cw]).resize((width, height), Image.Resampling.BOX))
           for f in frames]
    return np.stack(out).astype(np.uint8)


def parse_image_arg(arg: str) -> tuple[str, int]:
    """'a.png' -> ('a.png', 0); 'a.png@7' -> ('a.png', 7); 'a.png@-1' -> ('a.png', -1)."""
    path, at, frame = arg.rpartition("@")
    if not at:
        return arg, 0
    try:
        return path, int(frame)
    except ValueError:
        raise ValueError(f"--image {arg!r}: the part after @ must be a frame index") from None


def parse_frames_arg(arg: str) -> tuple[str, int]:
    """'clip.mp4:4' -> ('clip.mp4', 4): the first 4 frames are given."""
    path, colon, k = arg.rpartition(":")
    if not colon:
        raise ValueError(f"--frames {arg!r}: expected VIDEO:k (k = how many first frames are given)")
    try:
        k = int(k)
    except ValueError:
        raise ValueError(f"--frames {arg!r}: k must be an integer") from None
    return path, k


def load_images(args: list[str], video_shape) -> tuple[np.ndarray, list[int]]:
    """--image arguments -> (uint8 [1, k, H, W, 3], frame positions)."""
    T, H, W, _ = video_shape
    frames, positions = [], []
    for arg in args:
        path, at = parse_image_arg(arg)
        if not -T <= at < T:
            raise ValueError(f"--image {arg!r}: frame {at} is outside the model's {T} frames")
        frames.append(fit_frames(video_io.read_image(path)[None], H, W, path)[0])
        positions.append(at)
    return np.stack(frames)[None], positions


def load_clip_prefix(arg: str, video_shape) -> np.ndarray:
    """--frames VIDEO:k -> uint8 [1, k, H, W, 3], the clip's first k frames."""
    T, H, W, _ = video_shape
    path, k = parse_frames_arg(arg)
    if not 1 <= k < T:
        raise ValueError(f"--frames {arg!r}: k={k} must be in [1, {T - 1}] for a {T}-frame model")
    clip = video_io.read_video(path)
    if len(clip) < k:
        raise ValueError(f"{path}: {len(clip)} frames, fewer than the k={k} asked for")
    return fit_frames(clip[:k], H, W, path)[None]


def load_source(path: str, video_shape) -> np.ndarray:
    """--source VIDEO -> uint8 [1, T, H, W, 3], its first T frames."""
    T, H, W, _ = video_shape
    clip = video_io.read_video(path)
    if len(clip) < T:
        raise ValueError(f"{path}: {len(clip)} frames; the model makes {T}-frame clips and needs "
                         f"a source at least that long")
    if len(clip) > T:
        warnings.warn(f"{path}: {len(clip)} frames, using the first {T}", stacklevel=2)
    return fit_frames(clip[:T], H, W, path)[None]
