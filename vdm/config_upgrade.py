"""Configs saved before a field existed: the value that reproduces how such a run behaved.

A workdir keeps the config it was trained with (``config.json``). A field added to the
configs later is missing there, and reading the run again (resuming it, sampling,
evaluating, probing) would fail on it or refuse the workdir as another config. Such
reads fill the missing fields from ``ADDED_FIELDS`` and log which.

Every new config field whose absence meant something goes in here, with the value that
behaves as the code did before the field existed (a feature added off, a knob added at
the old fixed value).
"""
from __future__ import annotations

from typing import Any

from absl import logging

ADDED_FIELDS: dict[str, Any] = {
    # conditioning modes (image-to-video, frame masks, editing): off
    "conditions.image": {"enabled": False, "dropout": 0.1, "guidance": 1.0,
                         "anchors": {"first": 1.0}},
    "conditions.frames": {"enabled": False, "dropout": 0.1, "guidance": 1.0,
                          "strategies": {"prefix": 0.5, "first_last": 0.25, "random": 0.25}},
    "conditions.source_video": {"enabled": False, "dropout": 0.1, "guidance": 1.5},
    "conditions.image.clean": False,
    "conditions.frames.clean": False,
    "data.text_key": "caption",
    # evaluation during and after training
    "eval.every": 0,
    "eval.frechet_features": "random_conv",
    "eval.shots": 0,
    "eval.tasks": "",
    # model, training and sampling knobs, at the behaviour they replaced
    "diffusion.time_uniform_mix": 0.0,
    "diffusion.time_importance": False,
    "model.frame_cond_form": "mlp",
    "model.out_conv": 0,
    "model.remat": "none",
    "model.scan_layers": False,
    "model.text_pool": "mean",
    "optim.text_lr_scale": 1.0,
    "optim.optimizer": "adamw",
    "optim.muon_beta": 0.95,
    "optim.muon_rms": 0.2,
    "sample.guidance_interval": [0.0, 1.0],  # a list: the plain dict's form of a tuple
    "train.grad_accum_steps": 1,
    "train.max_bad_steps": 10,
    "train.peak_flops": 0.0,
}


def fill_added_fields(config: dict, where: str = "config", like: dict | None = None) -> list[str]:
    """Add the missing ``ADDED_FIELDS`` to a config's plain dict, in place; returns the
    dotted keys filled (and logs them, naming ``where``). With ``like``, only the fields
    that config has are filled (to compare a saved config with a new one)."""
    filled = []
    for key, value in ADDED_FIELDS.items():
        if like is not None and not _has(like, key):
            continue
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{where}: {part!r} on the way to {key!r} is not a group")
        if last not in node:
            node[last] = _copy(value)
            filled.append(key)
    if filled:
        logging.info("%s predates %d config fields; filled with their earlier behaviour: %s",
                     where, len(filled), ", ".join(filled))
    return filled


_MISSING = object()  # a field the dict does not have (None is a value)


def drop_added_defaults(config: dict) -> dict:
    """The inverse of ``fill_added_fields`` on a plain dict (tuples as lists), in place: the
    ``ADDED_FIELDS`` that still hold their earlier behaviour are removed, so a config reads as
    it would have before those fields existed. Returns the dict."""
    for key, value in ADDED_FIELDS.items():
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(last, _MISSING) == value:
            del node[last]
    return config


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value


def _has(tree: dict, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True
