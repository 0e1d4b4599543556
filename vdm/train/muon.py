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

from typing import Sequence

import jax
from flax import nnx
from optax.contrib import MuonDimensionNumbers

from vdm.sharding import _var_names

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


def muon_dimension_numbers(tree):
    """``muon_weight_dimension_numbers`` for optax: the tree of a model's parameters (or of
    their gradients, which keep the Variables' names) -> a MuonDimensionNumbers or None in
    place of each Variable."""
    is_var = lambda x: isinstance(x, nnx.Variable)
    return jax.tree.map(lambda v: muon_axes(_var_names(v)) if is_var(v) else None, tree, is_leaf=is_var)
