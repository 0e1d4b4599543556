"""Metric writers: console lines, a JSONL file, and wandb (offline by default)."""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

import numpy as np


def _plain(v: Any) -> Any:
    if isinstance(v, (np.generic, np.ndarray)) and np.ndim(v) == 0:
        return v.item()
    if hasattr(v, "item") and getattr(v, "shape", None) == ():
        return v.item()
    return v


class MetricWriter:
    """Writes scalars to ``workdir/metrics.jsonl``, the console and wandb."""

    def __init__(self, workdir: str, *, config: Mapping | None = None, wandb_cfg: Mapping | None = None,
                 is_main: bool = True, run_name: str | None = None):
        self.is_main = is_main
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = open(self.path, "a") if is_main else None
        self._wandb = None
        mode = (wandb_cfg or {}).get("mode", "offline")
        if is_main and mode != "disabled" and os.environ.get("WANDB_MODE") != "disabled":
            import wandb  # imported lazily: slow, and optional at run time

            self._wandb = wandb.init(
                project=wandb_cfg.get("project", "vdm"), entity=wandb_cfg.get("entity") or None,
                group=wandb_cfg.get("group") or None, name=run_name, mode=mode,
                dir=workdir, config=dict(config or {}), resume="allow",
                id=wandb_cfg.get("run_id") or None, tags=list(wandb_cfg.get("tags", [])),
                settings=wandb.Settings(silent=True))

    def write(self, step: int, metrics: Mapping[str, Any], *, console: bool = False, prefix: str = "") -> None:
        if not self.is_main:
            return
        row = {"step": int(step), "time": time.time()}
        row.update({prefix + k: _plain(v) for k, v in metrics.items()})
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k not in ("step", "time")}, step=int(step))
        if console:
            print(format_line(step, {prefix + k: _plain(v) for k, v in metrics.items()}), flush=True)

    def log_media(self, step: int, key: str, path: str) -> None:
        if self._wandb is None:
            return
        import wandb

        media = wandb.Video(path) if path.endswith((".mp4", ".gif")) else wandb.Image(path)
        self._wandb.log({key: media}, step=int(step))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def format_line(step: int, metrics: Mapping[str, Any]) -> str:
    parts = [f"step {step}"]
    for k, v in metrics.items():
        if isinstance(v, float):
            parts.append(f"{k} {v:.4g}" if math.isfinite(v) else f"{k} {v}")
        else:
            parts.append(f"{k} {v}")
    return " | ".join(parts)


def format_eta(seconds: float) -> str:
    if not seconds < 1e7:  # no rate measured yet (or none at all)
        return "?"
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
