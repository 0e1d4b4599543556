"""Read and write videos: mp4 (ffmpeg via imageio-ffmpeg), gif, png grids.

Videos are uint8 [T, H, W, 3]; batches [N, T, H, W, 3].
"""
from __future__ import annotations

import os
from typing import Sequence

import imageio.v2 as imageio
import numpy as np


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8 [0, 255]."""
    x = np.asarray(x, np.float32)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def upscale(videos: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of the two spatial axes (the last but one two)."""
    if factor <= 1:
        return videos
    return np.repeat(np.repeat(videos, factor, axis=-3), factor, axis=-2)


def grid(videos: np.ndarray, pad: int = 1, pad_value: int = 128) -> np.ndarray:
    """[N, T, H, W, 3] -> one image [N*(H+pad)+pad, T*(W+pad)+pad, 3]: frames across, samples down."""
    n, t, h, w, c = videos.shape
    out = np.full((n * (h + pad) + pad, t * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        for j in range(t):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = videos[i, j]
    return out


def tile(videos: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """[N, T, H, W, 3] -> one video [T, rows*(H+pad)+pad, cols*(W+pad)+pad, 3] (samples tiled)."""
    n, t, h, w, c = videos.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((t, rows * (h + pad) + pad, cols * (w + pad) + pad, c), 128, np.uint8)
    for i in range(n):
        y, x = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        out[:, y:y + h, x:x + w] = videos[i]
    return out


def _even(video: np.ndarray) -> np.ndarray:
    """H.264 with yuv420p needs even height and width: pad by one pixel if needed."""
    t, h, w, c = video.shape
    return np.pad(video, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))


def write_mp4(path: str, video: np.ndarray, fps: int = 8) -> None:
    video = _even(np.asarray(video, np.uint8))
    imageio.mimwrite(path, list(video), fps=fps, codec="libx264", quality=8,
                     macro_block_size=1, ffmpeg_log_level="error")


def write_gif(path: str, video: np.ndarray, fps: int = 8) -> None:
    imageio.mimwrite(path, list(np.asarray(video, np.uint8)), duration=1000 / fps, loop=0)


def write_png(path: str, image: np.ndarray) -> None:
    imageio.imwrite(path, np.asarray(image, np.uint8))


def write_samples(prefix: str, videos: np.ndarray, *, scale: int = 4, fps: int = 8,
                  formats: Sequence[str] = ("mp4", "gif", "png")) -> list[str]:
    """Write a batch of clips as ``prefix.mp4`` / ``.gif`` (tiled) and ``prefix.png`` (grid)."""
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    big = upscale(np.asarray(videos, np.uint8), scale)
    paths = []
    if "mp4" in formats:
        paths.append(prefix + ".mp4")
        write_mp4(paths[-1], tile(big), fps)
    if "gif" in formats:
        paths.append(prefix + ".gif")
        write_gif(paths[-1], tile(big), fps)
    if "png" in formats:
        paths.append(prefix + ".png")
        write_png(paths[-1], grid(big))
    return paths


def read_video(path: str) -> np.ndarray:
    """Any format imageio reads -> uint8 [T, H, W, 3]."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: empty file")
    try:
        frames = [np.asarray(f) for f in imageio.mimread(path, memtest=False)]
    except Exception as e:  # imageio raises many types; name the file
        raise ValueError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from e
    if not frames:
        raise ValueError(f"{path}: no frames")
    video = np.stack([f[..., :3] if f.ndim == 3 else np.repeat(f[..., None], 3, -1) for f in frames])
    return video.astype(np.uint8)


def read_image(path: str) -> np.ndarray:
    """An image file -> uint8 [H, W, 3]."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: empty file")
    try:
        image = np.asarray(imageio.imread(path))
    except Exception as e:  # imageio raises many types; name the file
        raise ValueError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e
    if image.ndim not in (2, 3):
        raise ValueError(f"{path}: not a single image (shape {image.shape})")
    return (image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, -1)).astype(np.uint8)
