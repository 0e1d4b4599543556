"""Evaluation tasks: what a conditioned model is asked to do, and how each is scored.

    t2v          prompt only                           grounded metrics
    i2v          prompt + the true first frame         + anchor_psnr, anchor_kept
    predict      prompt + the first T//2 true frames   + continuation_error, psnr, ssim
    interpolate  prompt + the true first and last      + continuation_error, psnr, ssim
    edit         text + the source clip of an edit pair  + trajectory_error, edit_applied

Every task draws its inputs from the same fixed test clips, whose truth is known; a
model is evaluated on the tasks its conditions allow (`tasks_for`). The given frames are
NOT clamped here: the scores say what the model itself does with them.

- anchor_psnr        dB, PSNR of the generated frame(s) at the given positions vs the given ones.
- anchor_kept        over (clip, frame, object): the anchor's object (its colour) is present
                     with the anchor's shape class: the anchor's identity held through the clip.
- continuation_error px, mean distance of the generated object's centroid from the true one over
                     the generated (not given) frames.
- psnr, ssim         of the generated frames against the true clip, over the generated frames.
- trajectory_error   px, mean distance of the edited object's centroid from the SOURCE clip's
                     (the edit must keep the motion), over (clip, frame, object).
- edit_applied       over clips: the requested attribute is there in most frames (colour
                     edits: the new colour present and the old one gone; shape edits: the new
                     shape class; background edits: the background class); also per edit
                     kind as edit_applied/<kind> (kinds present among the clips).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from vdm.data.shapes_render import BACKGROUNDS, EDIT_KINDS
from vdm.evaluation import grounded
from vdm.evaluation.image_metrics import psnr, ssim

TASKS = ("t2v", "i2v", "predict", "interpolate", "edit")
_NEEDS = {"t2v": ("text",), "i2v": ("image",), "predict": ("frames",), "interpolate": ("frames",),
          "edit": ("source_video",)}


def tasks_for(conditions: Sequence[str], has_source: bool, text_key: str = "caption") -> list[str]:
    """The tasks a model with these conditions can be evaluated on (edit needs edit pairs;
    a model whose text is an edit instruction is evaluated on editing only)."""
    out = [t for t in TASKS if all(c in conditions for c in _NEEDS[t])]
    if "text" not in conditions and not out:
        out = ["t2v"]  # unconditional: still scored against the test clips' truth
    if text_key == "instruction" and has_source and "edit" in out:
        return ["edit"]
    return [t for t in out if t != "edit" or has_source]


def known_positions(task: str, num_frames: int) -> list[int]:
    if task == "i2v":
        return [0]
    if task == "predict":
        return list(range(num_frames // 2))
    if task == "interpolate":
        return [0, num_frames - 1]
    return []


def generate_kwargs(task: str, clips: dict[str, np.ndarray]) -> dict:
    """Keyword arguments of `Generator.generate` for a task, from the test clips:
    `video` uint8 [N, T, H, W, 3] (and `source_video` for edits)."""
    T = clips["video"].shape[1]
    at = known_positions(task, T)
    if task == "i2v":
        return dict(image=clips["video"][:, at], image_at=at, clamp=False)
    if task in ("predict", "interpolate"):
        return dict(frames=clips["video"][:, at], frames_at=at, clamp=False)
    if task == "edit":
        return dict(source=clips["source_video"])
    return {}


def classify_background(videos: np.ndarray) -> np.ndarray:
    """BACKGROUNDS index per clip from its non-object pixels, -1 for none of them (a flat grey
    field). Backgrounds are static, so each pixel's grey level is first taken as its median
    over the frames where no object covers it (flicker and per-frame speckle are not the
    background). Then: black if dark; textured if rough (mean |second difference| along rows
    above 8 levels: real gradients give <= 1, real textures 16-35, so the split sits between
    them and a gradient drawn with a little noise is still a gradient); else a gradient if a
    plane fitted to it rises by at least 12 levels across the frame (half the shallowest
    rendered ramp), and none of them if it is flat."""
    videos = grounded.to_uint8(videos)
    N, _, H, W, _ = videos.shape
    bg = grounded.segment_colors(videos) < 0  # [N, T, H, W]
    grey = np.where(bg, videos.astype(np.float64).mean(-1), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels covered in every frame
        still = np.nanmedian(grey, axis=1)  # [N, H, W]
    yy, xx = np.mgrid[0:H, 0:W]
    kind = np.empty(N, np.int32)
    for i in range(N):
        seen = ~np.isnan(still[i])
        level = still[i][seen].mean() if seen.any() else 0.0
        d2 = np.abs(np.diff(still[i], n=2, axis=-1))  # nan where any of the 3 pixels is unseen
        rough = np.nanmean(d2) if np.isfinite(d2).any() else 0.0
        if level < 8:
            kind[i] = BACKGROUNDS.index("black")
        elif rough > 8.0:
            kind[i] = BACKGROUNDS.index("texture")
        else:
            plane = np.stack([np.ones(seen.sum()), xx[seen], yy[seen]], 1)  # [P, 3]
            coef = np.linalg.lstsq(plane, still[i][seen], rcond=None)[0]
            rise = np.hypot(coef[1] * (W - 1), coef[2] * (H - 1))  # levels across the frame
            kind[i] = BACKGROUNDS.index("gradient") if rise >= 12.0 else -1
    return kind


def task_metrics(task: str, videos: np.ndarray, clips: dict[str, np.ndarray],
                 truth: dict[str, np.ndarray]) -> dict[str, float]:
    """Grounded metrics plus the task's own (module docstring). videos uint8 [N, T, H, W, 3]."""
    videos = grounded.to_uint8(videos)
    out = grounded.grounded_metrics(videos, truth)
    N, T, H, W, _ = videos.shape
    num = np.asarray(truth["num_objects"]).reshape(N)
    color = np.asarray(truth["color"]).reshape(N, -1)
    valid = np.arange(color.shape[1])[None, :] < num[:, None]  # [N, J]
    m = grounded.measure_objects(videos, color, num)
    diag = float(np.hypot(H, W))
    centroid = np.where(np.isnan(m["centroid"]), np.inf, m["centroid"])
    at = known_positions(task, T)
    free = np.array([t for t in range(T) if t not in at])
    if task == "i2v":
        out["anchor_psnr"] = psnr(videos[:, at], clips["video"][:, at])
        shape = np.asarray(truth["shape"]).reshape(N, -1)
        kept = (m["count"] >= 1) & (m["shape"] == shape[:, None, :])
        out["anchor_kept"] = float(kept[np.broadcast_to(valid[:, None, :], kept.shape)].mean())
    if task in ("predict", "interpolate"):
        err = np.minimum(_err_map(centroid, truth["positions"]), diag)
        out["continuation_error"] = float(err[:, free][np.broadcast_to(valid[:, None], err[:, free].shape)].mean())
        out["psnr"] = psnr(videos[:, free], clips["video"][:, free])
        out["ssim"] = ssim(videos[:, free], clips["video"][:, free])
    if task == "edit":
        err = np.minimum(_err_map(centroid, truth["source_positions"]), diag)
        out["trajectory_error"] = float(err[np.broadcast_to(valid[:, None], err.shape)].mean())
        applied = _edit_applied(videos, m, truth, clips)
        out["edit_applied"] = float(applied.mean())
        kind = np.asarray(truth["edit_kind"]).reshape(-1)
        for i, name in enumerate(EDIT_KINDS):  # per kind: recolour, reshape, background differ a lot
            of_kind = kind == i
            if of_kind.any():
                out[f"edit_applied/{name}"] = float(applied[of_kind].mean())
    return out


def _err_map(centroid: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """[N, T, J] distances between measured centroids [N, T, J, 2] and truth [N, J, T, 2]."""
    truth = np.moveaxis(np.asarray(positions, np.float64), 1, 2)[:, : centroid.shape[1]]
    return np.linalg.norm(centroid - truth, axis=-1)


def _edit_applied(videos, m, truth, clips) -> np.ndarray:
    """bool [N]: the requested edit shows in more than half of the frames."""
    N = videos.shape[0]
    kind = np.asarray(truth["edit_kind"]).reshape(N)
    color, old_color = np.asarray(truth["color"]), np.asarray(truth["source_color"])
    shape = np.asarray(truth["shape"])
    changed = (color != old_color) | (shape != np.asarray(truth["source_shape"]))  # [N, J]
    j = np.where(changed.any(1), changed.argmax(1), 0)  # the edited object
    rows = np.arange(N)
    present = m["count"][rows, :, j] >= 1  # [N, T] the new colour's object
    # The old colour must be gone: measure it as if it were prompted.
    old = grounded.measure_objects(videos, old_color[rows, j][:, None], np.ones(N, np.int32))
    gone = old["count"][:, :, 0] == 0
    ok = np.zeros(N, bool)
    is_color = kind == EDIT_KINDS.index("color")
    ok[is_color] = ((present & gone).mean(1) > 0.5)[is_color]
    is_shape = kind == EDIT_KINDS.index("shape")
    shape_ok = m["shape"][rows, :, j] == shape[rows, j][:, None]
    ok[is_shape] = (shape_ok.mean(1) > 0.5)[is_shape]
    is_bg = kind == EDIT_KINDS.index("background")
    ok[is_bg] = (classify_background(videos) == np.asarray(truth["background"]).reshape(N))[is_bg]
    return ok
