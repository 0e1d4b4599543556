"""Evaluate a generator on a fixed, seeded set of test clips with known ground truth.

The prompts (and, for conditioned tasks, the given frames or source clips) come from
the first N clips of the dataset's test split, so every generated clip has a truth to be
scored against. Each task the model's conditions allow is run (`tasks.tasks_for`);
text-to-video metrics keep their plain names, the others are prefixed by the task
("i2v/anchor_kept", "edit/trajectory_error", ...).

Besides the task metrics, every task gets the background metrics and drift slopes of
`stability`, and the Fréchet distance (`frechet`) of its clips from the whole test split
(statistics cached under ``data_dir``; ``eval.frechet_features`` picks the extractor, ""
turns it off). With ``eval.shots = S > 1``, the first prompts (and their given frames
or source clips) are also generated with S seeds each for `identity_across_shots`.
Per-frame drift curves are in the JSON file under ``per_frame``, not among the returned
scalars.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np

from vdm.data import moving_shapes, pipeline
from vdm.evaluation import frechet, grounded, stability, start_prior, tasks as eval_tasks

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
    stride, frames = config.data.frame_stride, _model_frames(config)
    for key in ("positions", "source_positions"):
        if key in truth:
            truth[key] = truth[key][:, :, frames]
    if "speed" in truth:
        truth["speed"] = np.where(truth["speed"] > 0, truth["speed"] * stride, truth["speed"])
    clips = {k: np.stack([e[k][frames] for e in examples]) for k in ("video", "source_video")
             if k in examples[0]}
    return texts, truth, clips


def _model_frames(config: ml_collections.ConfigDict) -> slice:
    """The frames of a stored clip the model sees: the first num_frames at the stride."""
    stride, t = config.data.frame_stride, config.data.num_frames
    return slice(0, (t - 1) * stride + 1, stride)


def reference_stats(config: ml_collections.ConfigDict, extractor) -> tuple[np.ndarray, np.ndarray]:
    """Feature statistics of every test clip (cropped to the model's frames), cached."""
    def clips():
        source = pipeline.make_source(config.data.config, config.data.data_dir, "test")
        return np.stack([source[i]["video"][_model_frames(config)] for i in range(len(source))])

    moving_shapes.build(config.data.config, config.data.data_dir)
    key = dict(data=config.data.config, split="test", frames=config.data.num_frames,
               stride=config.data.frame_stride)
    return frechet.reference_stats(clips, extractor, key=key,
                                   cache_dir=os.path.join(config.data.data_dir, "frechet_stats"))


def shot_metrics(generator, config: ml_collections.ConfigDict, task: str, texts, truth, clips, *,
                 seed: int) -> dict[str, float]:
    """Identity across shots: up to 8 prompts (with the task's given frames or source clip),
    ``eval.shots`` seeds each."""
    shots, bs = config.eval.shots, config.eval.batch_size
    P = min(8, len(texts))
    prompts = [t for t in texts[:P] for _ in range(shots)]  # prompt-major: [P * S]
    given = {k: np.repeat(v[:P], shots, 0) for k, v in clips.items()}
    videos = np.concatenate([
        generator.generate(prompts[i:i + bs] if "text" in generator.names else None,
                           num=len(prompts[i:i + bs]), seed=seed + 100_003 + i,
                           **eval_tasks.generate_kwargs(task, {k: v[i:i + bs] for k, v in given.items()}))
        for i in range(0, len(prompts), bs)])
    videos = videos.reshape((P, shots) + videos.shape[1:])
    return stability.identity_across_shots(videos, {k: v[:P] for k, v in truth.items()})


def direction_chance(task: str, config: ml_collections.ConfigDict, truth: Mapping[str, np.ndarray],
                     num_frames: int) -> dict[str, float]:
    """The direction adherence a model reaches without reading the direction words, given what
    the task gives it (t2v keeps grounded's 1 / 8): for i2v the first frame's posterior
    (`start_prior`: without bounce, where an object starts limits where it can go); where the
    given frames show the motion (two or more of them, or an edit's source clip), 1."""
    if task == "i2v" and "positions" in truth:
        scene = moving_shapes.CONFIGS[config.data.config].scene
        return {"direction_chance": start_prior.direction_chance_given_start(truth, scene,
                                                                             config.data.frame_stride)}
    if task == "edit" or len(eval_tasks.known_positions(task, num_frames)) >= 2:
        return {"direction_chance": 1.0}
    return {}


def eval_prompts(config: ml_collections.ConfigDict, num: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """Texts and ground truth of the first ``num`` test clips (cropped to the model's frames)."""
    texts, truth, _ = eval_clips(config, num)
    return texts, truth


def generate_in_batches(generator, texts, clips: dict[str, np.ndarray], *, batch_size: int, seed: int,
                        kwargs=lambda part: {}) -> np.ndarray:
    """uint8 [N, T, H, W, 3]: one clip per test clip, ``batch_size`` at a time; batch i starts
    at seed + i. texts: the prompts (None for a model without text); ``kwargs(part)`` gives
    the generate() arguments from the batch's slice of ``clips``."""
    n = len(next(iter(clips.values())))
    videos = []
    for i in range(0, n, batch_size):
        part = {k: v[i:i + batch_size] for k, v in clips.items()}
        videos.append(generator.generate(None if texts is None else texts[i:i + batch_size],
                                         num=len(part["video"]), seed=seed + i, **kwargs(part)))
    return np.concatenate(videos)


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
    per_frame: dict[str, dict] = {}
    features = config.eval.get("frechet_features", frechet.DEFAULT_EXTRACTOR)
    extractor = frechet.load_extractor(features) if features else None
    reference = reference_stats(config, extractor) if extractor else None
    for task in tasks:
        videos = generate_in_batches(generator, texts if use_text else None, clips, batch_size=bs, seed=seed,
                                     kwargs=lambda part: eval_tasks.generate_kwargs(task, part))
        scores = eval_tasks.task_metrics(task, videos, clips, truth)
        scores.update(direction_chance(task, config, truth, videos.shape[1]))
        scores.update(stability.background_metrics(videos))
        drift = stability.drift_per_frame(videos, truth)
        scores.update(stability.drift_summary(drift))
        per_frame[task] = {k: [None if np.isnan(x) else float(x) for x in v] for k, v in drift.items()}
        if extractor is not None and n >= 2:
            scores["frechet"] = frechet.distance_to(videos, reference, extractor)
        if config.eval.get("shots", 0) > 1:
            scores.update(shot_metrics(generator, config, task, texts, truth, clips, seed=seed))
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
            json.dump({"step": step, "num_samples": n, "tasks": tasks, **metrics, "per_frame": per_frame},
                      f, indent=2)
        with open(os.path.join(out_dir, f"metrics_step_{step:07d}.md"), "w") as f:
            f.write(metrics_table(per_task))
    return metrics


def evaluate_checkpoint(workdir: str, *, step: int | None = None, num: int | None = None,
                        tasks: Sequence[str] | None = None, shots: int | None = None,
                        features: str | None = None, data_dir: str | None = None,
                        out_dir: str | None = None, use_ema: bool = True,
                        overrides: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """Evaluate a run's checkpoint (latest by default; EMA weights unless ``use_ema=False``) as
    the training loop does; the arguments override the run's ``eval.*`` / ``data.data_dir``, and
    ``overrides`` ({"sample.sampler": "ddpm", "conditions.text.guidance": 5.0}) how it samples:
    keys under ``sample.`` / ``eval.`` or a condition's ``guidance``, nothing that changes the
    model. Returns (step, metrics); writes under ``out_dir`` (default ``workdir/eval``,
    ``workdir/eval_raw`` for the raw weights, ``.../eval_<overrides>`` with overrides, so that
    no two settings overwrite each other)."""
    from vdm.sampling import Generator
    from vdm.sweep import apply_overrides

    overrides = dict(overrides or {})
    for key in overrides:
        parts = key.split(".")
        if not (parts[0] in ("sample", "eval") and len(parts) == 2
                or parts[0] == "conditions" and len(parts) == 3 and parts[2] == "guidance"):
            raise ValueError(f"cannot override {key!r} at evaluation: only sample.*, eval.* and "
                             "conditions.<name>.guidance change how a trained model is sampled")
    gen = Generator.from_workdir(workdir, step=step, use_ema=use_ema)
    try:
        config = apply_overrides(gen.config, overrides)  # an unlocked copy
    except (KeyError, TypeError) as e:
        raise ValueError(str(e.args[0] if e.args else e)) from None
    if num is not None:
        if num < 2:
            raise ValueError(f"--num must be at least 2 (Fréchet statistics), got {num}")
        config.eval.num_samples = num
        config.eval.batch_size = min(config.eval.batch_size, num)
    if shots is not None:
        config.eval.shots = shots
    if features is not None:
        config.eval.frechet_features = features
    if data_dir is not None:
        config.data.data_dir = data_dir
    gen.config = config
    out_dir = out_dir or os.path.join(workdir, eval_dir_name(use_ema, overrides))
    metrics = evaluate(gen, config, out_dir, step=gen.step, tasks=tasks)
    return gen.step, metrics


def eval_dir_name(use_ema: bool = True, overrides: Mapping[str, Any] | None = None) -> str:
    """'eval', 'eval_raw', 'eval_sampler=ddpm,steps=100': one folder per way of evaluating."""
    name = "eval" if use_ema else "eval_raw"
    if overrides:
        name += "_" + ",".join(f"{k.split('.', 1)[1] if k.startswith(('sample.', 'eval.')) else k}={v}"
                               for k, v in overrides.items()).replace("/", "_").replace(" ", "")
    return name


def metrics_table(per_task: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per metric, one column per task."""
    names = list(dict.fromkeys(k for scores in per_task.values() for k in scores))
    lines = ["| metric | " + " | ".join(per_task) + " |", "|---|" + "---|" * len(per_task)]
    for k in names:
        cells = [f"{per_task[t][k]:.4f}" if k in per_task[t] else "" for t in per_task]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["eval_clips", "eval_dir_name", "eval_prompts", "evaluate", "evaluate_checkpoint", "metrics_table", "grounded"]
