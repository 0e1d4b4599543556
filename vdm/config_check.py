"""Config mistakes found before JAX starts: unknown keys (with the closest valid key) and
impossible values, each named by its dotted key.

Imports nothing heavy: the training CLI runs these checks before it imports JAX.
Checks that need the device count (batch against the mesh) stay in the training loop,
which runs them before compiling anything.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable

import ml_collections


def leaf_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Dotted names of every field: 'train.num_steps', 'model.patch_size', ..."""
    keys = []
    for name, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys += leaf_keys(value, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def override_keys(argv: Iterable[str], flag: str = "config") -> list[str]:
    """The dotted keys overridden on a command line: --config.a.b=v, --config.a.b v, --noconfig.a.b."""
    keys = []
    for arg in argv:
        for head in (f"--{flag}.", f"--no{flag}."):
            if arg.startswith(head):
                keys.append(arg[len(head):].split("=", 1)[0])
    return keys


def load_config_arg(argv: list[str], flag: str = "config") -> ml_collections.ConfigDict | None:
    """The config named by --config on a command line, without overrides (None if absent or broken)."""
    from ml_collections.config_flags import config_flags  # the module: its parser class is not re-exported

    for i, arg in enumerate(argv):
        if arg.startswith(f"--{flag}="):
            spec = arg.split("=", 1)[1]
        elif arg == f"--{flag}" and i + 1 < len(argv):
            spec = argv[i + 1]
        else:
            continue
        try:
            return config_flags.ConfigFileFlagParser(flag).parse(spec)
        except Exception:  # the caller reports absl's own error instead
            return None
    return None


def unknown_keys(config: ml_collections.ConfigDict, keys: Iterable[str]) -> list[str]:
    """One message per key that is not a field, naming the closest valid key."""
    valid = leaf_keys(config)
    out = []
    for key in keys:
        if key in valid:
            continue
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        out.append(f"unknown config key {key!r}{hint}")
    return out


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def is_interval(value: Any) -> bool:
    """(lo, hi) noise levels with 0 <= lo < hi <= 1 (a guidance interval)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return False
    return 0.0 <= lo < hi <= 1.0


OPTIMIZERS = ("adamw", "muon")  # optim.optimizer (built by vdm/train/state.make_optimizer)

# (key, test, what the value must be). Only keys that exist are checked, so that configs
# of other families need not define all of them.
_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("train.num_steps", lambda v: v >= 0, ">= 0"),
    ("train.batch_size", lambda v: v >= 1, ">= 1"),
    ("train.log_every", lambda v: v >= 1, ">= 1"),
    ("train.ckpt_every", lambda v: v >= 1, ">= 1"),
    ("train.keep_checkpoints", lambda v: v >= 1, ">= 1"),
    ("train.sample_every", lambda v: v >= 0, ">= 0 (0: only at the end)"),
    ("train.max_bad_steps", lambda v: v >= 1, ">= 1"),
    ("train.ema_decay", lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
    ("optim.lr", lambda v: v >= 0, ">= 0"),
    ("optim.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("optim.clip_norm", lambda v: v > 0, "> 0"),
    ("optim.text_lr_scale", lambda v: v >= 0, ">= 0"),
    ("optim.b1", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
    ("optim.b2", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
    ("optim.optimizer", lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
    ("optim.muon_beta", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
    ("optim.muon_rms", lambda v: v > 0, "> 0"),
    ("data.num_frames", lambda v: v >= 1, ">= 1"),
    ("data.frame_stride", lambda v: v >= 1, ">= 1"),
    ("model.hidden", lambda v: v >= 1, ">= 1"),
    ("model.depth", lambda v: v >= 1, ">= 1"),
    ("model.num_heads", lambda v: v >= 1, ">= 1"),
    ("sample.steps", lambda v: v >= 1, ">= 1"),
    ("sample.num", lambda v: v >= 1, ">= 1"),
    ("sample.guidance_interval", is_interval, "(lo, hi) with 0 <= lo < hi <= 1"),
    ("eval.num_samples", lambda v: v >= 0, ">= 0"),
    ("eval.batch_size", lambda v: v >= 1, ">= 1"),
]


def impossible_values(config: ml_collections.ConfigDict) -> list[str]:
    """One message per impossible value, naming the key."""
    keys = set(leaf_keys(config))
    out = []
    for key, ok, want in _RULES:
        if key in keys and not ok(_get(config, key)):
            out.append(f"{key}={_get(config, key)!r} must be {want}")
    if {"model.hidden", "model.num_heads"} <= keys and config.model.num_heads >= 1 \
            and config.model.hidden >= 1 and config.model.hidden % config.model.num_heads:
        out.append(f"model.hidden={config.model.hidden} is not divisible by model.num_heads="
                   f"{config.model.num_heads}")
    if "optim.text_lr_scale" in keys and config.optim.text_lr_scale != 1.0 \
            and not config.get("conditions", {}).get("text", {}).get("enabled", False):
        out.append(f"optim.text_lr_scale={config.optim.text_lr_scale} needs the text condition "
                   "(conditions.text.enabled): the model has no text encoder to scale")
    if "mesh" in config:
        sizes = dict(config.mesh)
        for axis, size in sizes.items():
            if size != -1 and size < 1:
                out.append(f"mesh.{axis}={size} must be >= 1, or -1 for the remaining devices")
        if list(sizes.values()).count(-1) > 1:
            out.append(f"mesh: at most one axis may be -1 (got {sizes})")
        shards = sizes.get("data", 1) * sizes.get("fsdp", 1)
        if "train.batch_size" in keys and shards >= 1 and config.train.batch_size % shards:
            out.append(f"train.batch_size={config.train.batch_size} is not divisible by mesh data*fsdp={shards}")
    return out
