"""Read and write videos: mp4 (ffmpeg via imageio-ffmpeg), gif, png grids.

Videos are uint8 [T, H, W, 3]; batches [N, T, H, W, 3].
"""
from __future__ import annotations

import os
import sys
import threading
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


VIDEO_FORMATS = (".mp4", ".gif", ".webm", ".mov", ".avi", ".mkv")
IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DECODE_TIMEOUT_S = 60.0


class BadMediaFile(ValueError):
    """A video or image file that cannot serve as input; the message names the file and the problem."""


def _check_file(path: str, formats: Sequence[str]) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise BadMediaFile(f"{path}: not a regular file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in formats:
        raise BadMediaFile(f"{path}: unsupported format {ext or '(no extension)'!r}; "
                           f"supported: {', '.join(formats)}")
    if os.path.getsize(path) == 0:
        raise BadMediaFile(f"{path}: empty file (0 bytes)")


def _decode(path: str, read, timeout_s: float):
    """``read(path)`` in a daemon thread: a decoder stuck on a broken file cannot hang the caller
    (the thread is abandoned; a daemon thread does not keep the interpreter alive)."""
    result: dict = {}

    def work():
        try:
            result["value"] = read(path)
        except Exception as e:  # imageio and its plugins raise many types
            result["error"] = e

    thread = threading.Thread(target=work, name=f"decode {os.path.basename(path)}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise BadMediaFile(f"{path}: decoding did not finish within {timeout_s:g} s")
    if "error" in result:
        e = result["error"]
        first_line = (str(e).strip().splitlines() or [""])[0]  # ffmpeg appends pages of stderr
        raise BadMediaFile(f"{path}: cannot decode ({type(e).__name__}: {first_line})") from e
    return result["value"]


def _rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    return frame[..., :3] if frame.ndim == 3 else np.repeat(frame[..., None], 3, -1)


def read_video(path: str, *, min_frames: int = 1, timeout_s: float = DECODE_TIMEOUT_S) -> np.ndarray:
    """A video file -> uint8 [T, H, W, 3], T >= min_frames. Any problem raises
    FileNotFoundError or BadMediaFile naming the file."""
    _check_file(path, VIDEO_FORMATS)
    frames = _decode(path, lambda p: imageio.mimread(p, memtest=False), timeout_s)
    if len(frames) < max(min_frames, 1):
        raise BadMediaFile(f"{path}: {len(frames)} frames, fewer than the {max(min_frames, 1)} needed")
    return np.stack([_rgb(f) for f in frames]).astype(np.uint8)


def read_image(path: str, *, timeout_s: float = DECODE_TIMEOUT_S) -> np.ndarray:
    """An image file -> uint8 [H, W, 3]. Any problem raises FileNotFoundError or BadMediaFile."""
    _check_file(path, IMAGE_FORMATS)
    image = _decode(path, imageio.imread, timeout_s)
    if np.ndim(image) not in (2, 3):
        raise BadMediaFile(f"{path}: not a single image (shape {np.shape(image)})")
    return _rgb(image).astype(np.uint8)


def read_videos(paths: Sequence[str], *, min_frames: int = 1, skip_bad: bool = False,
                timeout_s: float = DECODE_TIMEOUT_S) -> tuple[list[np.ndarray], list[str]]:
    """Read many videos: (videos, problems). With ``skip_bad`` a bad file is left out with a
    message per file and a count at the end; otherwise the first bad file raises."""
    videos, problems = [], []
    for path in paths:
        try:
            videos.append(read_video(path, min_frames=min_frames, timeout_s=timeout_s))
        except (FileNotFoundError, BadMediaFile) as e:
            if not skip_bad:
                raise
            problems.append(str(e))
            print(f"skipped: {e}", file=sys.stderr, flush=True)
    if problems:
        print(f"skipped {len(problems)} of {len(paths)} videos", file=sys.stderr, flush=True)
    return videos, problems
