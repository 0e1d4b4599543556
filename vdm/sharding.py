"""Device meshes and the one map from logical axis names to mesh axes.

Models annotate parameters with logical names (``nnx.with_partitioning(init,
('embed', 'mlp'))``) and constrain activations with ``constrain(x, names)``.
Only this file decides which mesh axis a logical name lands on, through a
named rule set, so that data / FSDP / tensor / sequence parallelism are a
config choice and never a model change.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Iterator, Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# Variables carry their logical names as metadata; shardings are computed here
# from the active rule set, not eagerly at creation (which needs a mesh).
nnx.use_eager_sharding(False)

MESH_AXES = ("data", "fsdp", "sequence", "tensor")
BATCH_AXES = ("data", "fsdp")

# Logical name -> mesh axis (or tuple of axes, or None = replicated).
# Parameter names: embed, mlp, heads, head_dim, vocab, cond, patch, layers.
# Activation names carry an ``act_`` prefix: a parameter's 'embed' is FSDP-
# sharded while an activation's embed dimension is not.
RULE_SETS: dict[str, dict[str, str | tuple[str, ...] | None]] = {
    "default": {
        # parameters
        "embed": "fsdp",
        "mlp": "tensor",
        "heads": "tensor",
        "head_dim": None,
        "vocab": None,
        "cond": None,
        "patch": None,
        "layers": None,  # the stacked axis of scanned blocks: every device holds every layer
        # activations
        "act_batch": BATCH_AXES,
        "act_frames": "sequence",  # spatial attention: each device holds whole frames
        "act_space": None,
        "act_tokens": "sequence",  # joint attention over all T*S tokens
        "act_embed": None,
        "act_heads": "tensor",
        "act_mlp": "tensor",
        "act_context": None,
    },
}
# Temporal attention: each device holds whole time lines (spatial positions are
# split over 'sequence'); moving between this and the default is an all-to-all.
RULE_SETS["temporal"] = dict(RULE_SETS["default"], act_frames=None, act_space="sequence")


def resolve_mesh_shape(sizes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Mesh shape in MESH_AXES order; one size may be -1 ("the rest")."""
    unknown = set(sizes) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"unknown mesh axes {sorted(unknown)}; valid: {MESH_AXES}")
    shape = [int(sizes.get(a, 1)) for a in MESH_AXES]
    free = [i for i, s in enumerate(shape) if s == -1]
    if len(free) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {dict(zip(MESH_AXES, shape))}")
    if any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh sizes must be positive or -1, got {dict(zip(MESH_AXES, shape))}")
    fixed = math.prod(s for s in shape if s != -1)
    if free:
        if num_devices % fixed:
            raise ValueError(
                f"mesh {dict(zip(MESH_AXES, shape))}: fixed axes multiply to {fixed}, "
                f"which does not divide the {num_devices} devices")
        shape[free[0]] = num_devices // fixed
    elif fixed != num_devices:
        raise ValueError(
            f"mesh {dict(zip(MESH_AXES, shape))} has {fixed} devices but {num_devices} are "
            f"available; set one axis to -1 to use the rest")
    return tuple(shape)


def make_mesh(sizes: Mapping[str, int] | None = None, devices: Sequence | None = None) -> Mesh:
    """A mesh over all (or the given) devices with axes MESH_AXES."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(sizes or {"data": -1}, len(devices))
    # Auto axes: XLA propagates shardings from our constraints (GSPMD style).
    axis_types = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    if devices == list(jax.devices()):
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=axis_types)


def logical_to_spec(names: Sequence[str | None], rules: Mapping | str = "default") -> PartitionSpec:
    """PartitionSpec for a tuple of logical names under a rule set.

    A mesh axis is used at most once per array: a later dimension whose rule
    names an axis already taken stays replicated.
    """
    rules = RULE_SETS[rules] if isinstance(rules, str) else rules
    used: set[str] = set()
    out = []
    for name in names:
        axes = rules.get(name) if name is not None else None
        if name is not None and name not in rules:
            raise KeyError(f"logical axis {name!r} has no rule; known: {sorted(rules)}")
        if axes is None:
            out.append(None)
            continue
        axes_t = (axes,) if isinstance(axes, str) else tuple(axes)
        axes_t = tuple(a for a in axes_t if a not in used)
        used.update(axes_t)
        out.append(axes_t[0] if len(axes_t) == 1 else (axes_t or None))
    return PartitionSpec(*out)


# --- the active mesh for activation constraints -------------------------------

class _Active(threading.local):
    mesh: Mesh | None = None
    rules: str = "default"


_active = _Active()


@contextlib.contextmanager
def use_mesh(mesh: Mesh | None, rules: str = "default") -> Iterator[None]:
    """Within this context, ``constrain`` places activations on ``mesh``."""
    old = (_active.mesh, _active.rules)
    _active.mesh, _active.rules = mesh, rules
    try:
        yield
    finally:
        _active.mesh, _active.rules = old


@contextlib.contextmanager
def rules(name: str) -> Iterator[None]:
    """Switch the rule set (e.g. 'temporal' inside temporal attention)."""
    old = _active.rules
    _active.rules = name
    try:
        yield
    finally:
        _active.rules = old


def active_mesh() -> Mesh | None:
    return _active.mesh


def constrain(x: jax.Array, names: Sequence[str | None], rule_set: str | None = None) -> jax.Array:
    """Sharding constraint by logical names; a no-op without an active mesh."""
    mesh = _active.mesh
    if mesh is None:
        return x
    if len(names) != x.ndim:
        raise ValueError(f"constrain: {len(names)} names {tuple(names)} for an array of shape {x.shape}")
    spec = logical_to_spec(names, rule_set or _active.rules)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


# --- parameters ---------------------------------------------------------------

def logical_names(v: nnx.Variable) -> tuple | None:
    """A parameter's logical axis names (None where it has none)."""
    meta = v.get_metadata()
    return meta.get("out_sharding") or meta.get("sharding_names") or meta.get("sharding")


def state_shardings(state, mesh: Mesh, rules: str = "default"):
    """NamedShardings for every leaf of an nnx State (or a pytree holding Variables).

    Variables with logical names follow the rule set; anything else is
    replicated. Works on abstract states (from ``nnx.eval_shape``).
    """
    def one(x):
        if isinstance(x, nnx.Variable):
            names = logical_names(x)
            spec = logical_to_spec(names, rules) if names else PartitionSpec()
            return x.replace(NamedSharding(mesh, spec))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Batch arrays: leading dimension over ('data', 'fsdp'), the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
