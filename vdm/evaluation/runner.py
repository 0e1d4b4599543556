"""Evaluate a generator on a fixed, seeded prompt set with known ground truth.

The prompts are the captions of the first N clips of the dataset's test
split, so every generated clip has a truth to be scored against.
"""
from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
import numpy as np

from vdm.data import moving_shapes, pipeline
from vdm.evaluation import grounded

TRUTH_KEYS = ("num_objects", "shape", "color", "size", "direction", "speed", "positions", "background")


def eval_prompts(config: ml_collections.ConfigDict, num: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """Captions and ground truth of the first ``num`` test clips (cropped to the model's frames)."""
    moving_shapes.build(config.data.config, config.data.data_dir)
    source = pipeline.make_source(config.data.config, config.data.data_dir, "test")
    if num > len(source):
        raise ValueError(f"{num} evaluation clips requested; the test split has {len(source)}")
    examples = [source[i] for i in range(num)]
    captions = [e["caption"].decode() if isinstance(e["caption"], bytes) else str(e["caption"])
                for e in examples]
    truth = {k: np.stack([np.asarray(e[k]) for e in examples]) for k in TRUTH_KEYS if k in examples[0]}
    # The model's clips are the first num_frames frames at the configured stride.
    stride, t = config.data.frame_stride, config.data.num_frames
    if "positions" in truth:
        truth["positions"] = truth["positions"][:, :, 0:(t - 1) * stride + 1:stride]
    if "speed" in truth:
        truth["speed"] = np.where(truth["speed"] > 0, truth["speed"] * stride, truth["speed"])
    return captions, truth


def evaluate(generator, config: ml_collections.ConfigDict, out_dir: str, *, step: int,
             write: bool = True, seed: int | None = None) -> dict[str, Any]:
    """Generate ``config.eval.num_samples`` clips, score them, write JSON, markdown and a grid."""
    from vdm.video_io import write_samples

    n, bs = config.eval.num_samples, config.eval.batch_size
    captions, truth = eval_prompts(config, n)
    seed = config.seed if seed is None else seed
    use_text = "text" in generator.names
    videos = np.concatenate([
        generator.generate(captions[i:i + bs] if use_text else None, num=len(captions[i:i + bs]),
                           seed=seed + i)
        for i in range(0, n, bs)])
    metrics = grounded.grounded_metrics(videos, truth)
    if write:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f"metrics_step_{step:07d}.json"), "w") as f:
            json.dump({"step": step, "num_samples": n, **metrics}, f, indent=2)
        with open(os.path.join(out_dir, f"metrics_step_{step:07d}.md"), "w") as f:
            f.write("| metric | value |\n|---|---|\n")
            f.writelines(f"| {k} | {v:.4f} |\n" for k, v in metrics.items())
        show = min(n, 16)
        write_samples(os.path.join(out_dir, f"samples_step_{step:07d}"), videos[:show])
        with open(os.path.join(out_dir, f"samples_step_{step:07d}.txt"), "w") as f:
            f.write("\n".join(captions[:show]) + "\n")
    return metrics
