"""Muon for our parameters: which ones it steps, and which of their axes form the matrix.

Muon (``optax.contrib.muon``) steps a weight matrix by its orthogonalised momentum. Our
kernels are not all 2D: qkv is [embed, 3, heads, head_dim], the attention output
[heads, head_dim, embed], the adaLN modulation [cond, n, embed], and scanned blocks lead
with 'layers'. Their logical axis names (``vdm/sharding.py``) say which axes a layer's
matmul contracts and which it produces, so the rule reads the names, not the layer types:

- unnamed axes (q / k / v, the n modulation vectors) and 'layers' are batch axes: each
  slice is its own matrix;
- the output axes are the last named one, or (heads, head_dim) when a kernel ends in them;
  the other named axes are contracted;
- the input and output layers (a 'patch' or 'vocab' axis: the patch embedding, the output
  head, the token table) and anything without a contracted axis (biases, norm scales,
  position tables) are stepped by AdamW, as the Muon authors do.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import optax
from flax import nnx
from optax.contrib import MuonDimensionNumbers

from vdm.sharding import logical_names

BATCH_NAMES = (None, "layers")
ADAMW_NAMES = ("patch", "vocab")  # a layer between pixels or bytes and the hidden width
HEAD_AXES = ("heads", "head_dim")


def muon_axes(names: Sequence[str | None] | None) -> MuonDimensionNumbers | None:
    """The matrix Muon orthogonalises for a parameter with these logical names, or None
    for a parameter that AdamW steps."""
    if not names or any(n in ADAMW_NAMES for n in names):
        return None
    named = [i for i, n in enumerate(names) if n not in BATCH_NAMES]
    output = named[-2:] if tuple(names[i] for i in named[-2:]) == HEAD_AXES else named[-1:]
    reduction = [i for i in named if i not in output]
    if not reduction:  # a bias, a scale or a position table: nothing is contracted
        return None
    return MuonDimensionNumbers(reduction_axis=tuple(reduction), output_axis=tuple(output))


def _is_var(x) -> bool:
    return isinstance(x, nnx.Variable)


def _map_variables(fn, tree, *, inside: bool = False):
    """``fn(the MuonDimensionNumbers or None of its names)`` in place of each Variable of a
    parameter tree (or of its gradients, which keep the Variables' names); a leaf without names
    gets ``fn(None)``. ``inside``: within each Variable instead, as optax's Muon walks its
    trees (AdamW's parameters are MaskedNodes there, and stay so)."""
    def one(v):
        dims = muon_axes(logical_names(v)) if _is_var(v) else None
        return jax.tree.map(lambda _: fn(dims), v) if inside else fn(dims)

    return jax.tree.map(one, tree, is_leaf=_is_var)


def muon_dimension_numbers(tree):
    """A MuonDimensionNumbers, or None for AdamW, in place of each Variable."""
    return _map_variables(lambda dims: dims, tree)


def _within_variables(tree):
    return _map_variables(lambda dims: dims, tree, inside=True)


def scale_to_rms(rms: float) -> optax.GradientTransformation:
    """An orthogonalised [fan_in, fan_out] matrix has RMS 1 / sqrt(max(fan_in, fan_out)):
    scaled by sqrt(max(fan_in, fan_out)) * rms its RMS is ``rms``, whatever its shape."""

    def update(updates, state, params=None):
        del params

        def one(u, dims):
            fan_in = math.prod(u.shape[a] for a in dims.reduction_axis)
            fan_out = math.prod(u.shape[a] for a in dims.output_axis)
            return u * (math.sqrt(max(fan_in, fan_out)) * rms)

        return jax.tree.map(one, updates, _within_variables(updates)), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def muon_with_adamw(schedule: optax.Schedule, *, beta: float, rms: float, weight_decay: float,
                    b1: float, b2: float) -> optax.GradientTransformation:
    """Muon (Nesterov momentum ``beta``, update RMS ``rms`` x lr) for the hidden matrices, and
    for every other parameter exactly the AdamW the other runs use; one learning-rate schedule
    and decoupled weight decay for both. (optax.contrib.muon would step the rest by NAdamW.)"""
    labels = lambda params: _map_variables(lambda dims: "adamw" if dims is None else "muon", params)
    muon = optax.chain(
        optax.contrib.scale_by_muon(beta=beta, nesterov=True, weight_dimension_numbers=_within_variables),
        scale_to_rms(rms),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(schedule))
    adamw = optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay)
    return optax.partition({"muon": muon, "adamw": adamw}, labels)
