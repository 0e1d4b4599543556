"""Smoke runs: the smoke config (tiny text-to-video model, 4-frame clips) on a given dataset
folder, and the losses a run logged."""
import json
import os

from configs import shapes_t2v


def smoke_config(data_dir: str, **overrides):
    """``overrides``: dotted keys, e.g. ``smoke_config(d, **{"train.num_steps": 2})``."""
    c = shapes_t2v.get_config("smoke")
    c.data.data_dir = data_dir
    c.update_from_flattened_dict(overrides)
    return c


def losses(workdir) -> dict[int, float]:
    """step -> loss, from a run's metrics.jsonl."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}
