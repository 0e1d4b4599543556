"""Evaluate a generator on a fixed, seeded set of test clips with known ground truth.

The prompts (and, for conditioned tasks, the given frames or source clips) come from
the first N clips of the dataset's test split, so every generated clip has a truth to be
scored against. Each task the model's conditions allow is run (`tasks.tasks_for`);
text-to-video metrics keep their plain names, the others are prefixed by the task
("i2v/anchor_kept", "edit/trajectory_error", ...).
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import ml_collections
import numpy as np

from vdm.data import moving_shapes, pipeline
from vdm.evaluation import grounded, tasks as eval_tasks

TRUTH_KEYS = ("num_objects", "shape", "color", "size", "direction", "speed", "positions", "background",
              "edit_kind", "source_shape", "source_color", "source_positions", "source_background")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def eval_clips(config: ml_collections.ConfigDict, num: int):
    """(texts, truth, clips) of the first ``num`` test clips, cropped to the model's frames:
    texts are what the text condition reads (``data.text_key``); clips hold uint8 ``video``
    (and ``source_video`` for edit pairs)."""
    moving_shapes.build(config.data.config, config.data.data_dir)
    source = pipeline.make_source(config.data.config, config.data.data_dir, "test")
    if num > len(source):
        raise ValueError(f"{num} evaluation clips requested; the test split has {len(source)}")
    examples = [source[i] for i in range(num)]
    texts = [_text(e[config.data.text_key]) for e in examples]
    truth = {k: np.stack([np.asarray(e[k]) for e in examples]) for k in TRUTH_KEYS if k in examples[0]}
    # The model's clips are the first num_frames frames at the configured stride.
    stride, t = config.data.frame_stride, config.data.num_frames
    frames = slice(0, (t - 1) * stride + 1, stride)
    for key in ("positions", "source_positions"):
        if key in truth:
            truth[key] = truth[key][:, :, frames]
    if "speed" in truth:
        truth["speed"] = np.where(truth["speed"] > 0, truth["speed"] * stride, truth["speed"])
    clips = {k: np.stack([e[k][frames] for e in examples]) for k in ("video", "source_video")
             if k in examples[0]}
    return texts, truth, clips


def eval_prompts(config: ml_collections.ConfigDict, num: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """Texts and ground truth of the first ``num`` test clips (cropped to the model's frames)."""
    texts, truth, _ = eval_clips(config, num)
    return texts, truth


def evaluate(generator, config: ml_collections.ConfigDict, out_dir: str, *, step: int,
             write: bool = True, seed: int | None = None,
             tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """Generate ``config.eval.num_samples`` clips per task, score them, write JSON, a markdown
    table and sample grids."""
    from vdm.video_io import write_samples

    n, bs = config.eval.num_samples, config.eval.batch_size
    texts, truth, clips = eval_clips(config, n)
    allowed = eval_tasks.tasks_for(generator.names, "source_video" in clips, config.data.text_key)
    tasks = list(tasks or [t.strip() for t in config.eval.get("tasks", "").split(",") if t.strip()] or allowed)
    bad = [t for t in tasks if t not in allowed]
    if bad:
        raise ValueError(f"evaluation tasks {bad} are not possible for this model and data; possible: {allowed}")
    seed = config.seed if seed is None else seed
    use_text = "text" in generator.names
    metrics: dict[str, Any] = {}
    per_task: dict[str, dict] = {}
    for task in tasks:
        videos = []
        for i in range(0, n, bs):
            part = {k: v[i:i + bs] for k, v in clips.items()}
            videos.append(generator.generate(texts[i:i + bs] if use_text else None, num=len(texts[i:i + bs]),
                                             seed=seed + i, **eval_tasks.generate_kwargs(task, part)))
        videos = np.concatenate(videos)
        scores = eval_tasks.task_metrics(task, videos, clips, truth)
        per_task[task] = scores
        metrics.update({(k if task == "t2v" else f"{task}/{k}"): v for k, v in scores.items()})
        if write:
            os.makedirs(out_dir, exist_ok=True)
            show = min(n, 16)
            name = f"samples_step_{step:07d}" + ("" if task == "t2v" else f"_{task}")
            shown = videos[:show]
            if task != "t2v":  # the given clip (source or true frames) above each sample
                given = clips["source_video" if task == "edit" else "video"][:show]
                shown = np.stack([given, shown], 1).reshape((-1,) + videos.shape[1:])
            write_samples(os.path.join(out_dir, name), shown)
            with open(os.path.join(out_dir, name + ".txt"), "w") as f:
                f.write("\n".join(texts[:show]) + "\n")
    if write:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f"metrics_step_{step:07d}.json"), "w") as f:
            json.dump({"step": step, "num_samples": n, "tasks": tasks, **metrics}, f, indent=2)
        with open(os.path.join(out_dir, f"metrics_step_{step:07d}.md"), "w") as f:
            f.write(metrics_table(per_task))
    return metrics


def metrics_table(per_task: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per metric, one column per task."""
    names = list(dict.fromkeys(k for scores in per_task.values() for k in scores))
    lines = ["| metric | " + " | ".join(per_task) + " |", "|---|" + "---|" * len(per_task)]
    for k in names:
        cells = [f"{per_task[t][k]:.4f}" if k in per_task[t] else "" for t in per_task]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["eval_clips", "eval_prompts", "evaluate", "metrics_table", "grounded"]
