"""The fastest a program's matmuls run on this backend: each of its dot_generals timed alone.

    floor = dot_floor(jitted_step, state, batch, key)
    floor["dot_floor_s"]    # sum over the program's dots of (count x time of that dot alone)

The program's jaxpr (forward, backward and optimizer, as traced) is walked for every
``dot_general``; ``scan`` bodies count ``length`` times, ``cond`` counts its costliest
branch, and ``while`` bodies count once (their trip count is not in the jaxpr). Each
distinct dot (operand shapes, dtypes, dimension numbers) is compiled on its own and
timed on random operands of its shapes, median of ``repeats`` calls after warm-up,
minus the dispatch time of an empty call.

This is an optimistic floor for the program's step time on this backend: operands are
warm in cache, nothing else runs, and the per-call dispatch is taken off. A step can only
reach ``flops / (dot_floor_s * peak)`` of a peak if every op that is not a matmul were
free, so that ratio bounds the MFU reachable by changing anything but the matmuls'
shapes.

Each dot is also timed with its operands swapped (the same product, its output
transposed), which some kernels run much faster; ``dot_floor_best_order_s`` sums the faster
of the two. It leaves out the transpose the swap needs, so it bounds what rephrasing the
products (operand order, which layout a weight is stored in) could buy.
"""
from __future__ import annotations

import collections
import math
import statistics
from typing import Any, Callable

import jax
import jax.extend.core  # noqa: F401 (ClosedJaxpr, Jaxpr)
import jax.numpy as jnp
import numpy as np

from vdm.timing import timed

DotKey = tuple  # (lhs shape, lhs dtype, rhs shape, rhs dtype, dimension_numbers, out dtype)


def _sub_jaxprs(eqn) -> list[tuple[Any, int]]:
    """(jaxpr, times it runs) for each jaxpr held in the params of ``eqn``."""
    name = eqn.primitive.name
    if name == "cond":  # one branch runs; count the one with the most dot FLOPs
        branches = [b.jaxpr for b in eqn.params["branches"]]
        costliest = max(branches, key=lambda j: sum(c * _flops(k) for k, c in collect_dots(j).items()))
        return [(costliest, 1)]
    times = int(eqn.params.get("length", 1)) if name == "scan" else 1
    found = []
    for value in eqn.params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, jax.extend.core.ClosedJaxpr):
                found.append((v.jaxpr, times))
            elif isinstance(v, jax.extend.core.Jaxpr):
                found.append((v, times))
    return found


def collect_dots(jaxpr) -> collections.Counter:
    """{DotKey: how many times it runs} over ``jaxpr`` and the jaxprs it calls."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)  # a ClosedJaxpr or a Jaxpr
    counts: collections.Counter = collections.Counter()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            lhs, rhs = (v.aval for v in eqn.invars)
            out = eqn.outvars[0].aval
            key = (tuple(lhs.shape), str(lhs.dtype), tuple(rhs.shape), str(rhs.dtype),
                   eqn.params["dimension_numbers"], str(out.dtype))
            counts[key] += 1
        for sub, times in _sub_jaxprs(eqn):
            for key, c in collect_dots(sub).items():
                counts[key] += c * times
    return counts


def _flops(key: DotKey) -> float:
    """2 x batch x lhs free x rhs free x contracted sizes."""
    lhs_shape, _, rhs_shape, _, ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch)), _ = key
    free = lambda shape, skip: math.prod(d for i, d in enumerate(shape) if i not in skip)
    return (2.0 * math.prod(lhs_shape[i] for i in lhs_batch) * math.prod(lhs_shape[i] for i in lhs_contract)
            * free(lhs_shape, lhs_contract + lhs_batch) * free(rhs_shape, rhs_contract + rhs_batch))


def swapped(key: DotKey) -> DotKey:
    """The same product with its operands swapped: its output is the transpose (batch axes
    first, then the other operand's free axes)."""
    lhs_shape, lhs_dtype, rhs_shape, rhs_dtype, ((lc, rc), (lb, rb)), out_dtype = key
    return rhs_shape, rhs_dtype, lhs_shape, lhs_dtype, ((rc, lc), (rb, lb)), out_dtype


def time_dot(key: DotKey, repeats: int = 5) -> float:
    """Seconds one call of this dot takes alone (dispatch included)."""
    lhs_shape, lhs_dtype, rhs_shape, rhs_dtype, dims, out_dtype = key
    rng = np.random.default_rng(0)
    lhs = jnp.asarray(rng.standard_normal(lhs_shape), lhs_dtype)
    rhs = jnp.asarray(rng.standard_normal(rhs_shape), rhs_dtype)
    fn = jax.jit(lambda a, b: jax.lax.dot_general(a, b, dims, preferred_element_type=out_dtype))
    return statistics.median(timed(lambda: fn(lhs, rhs), repeats, warmup=2))


def dispatch_s(repeats: int = 20) -> float:
    """Seconds a jitted call that does (almost) nothing takes: the per-call overhead."""
    x = jnp.zeros((8,), jnp.float32)
    step = jax.jit(lambda a: a + 1)
    return statistics.median(timed(lambda: step(x), repeats, warmup=2))


def dot_floor(fn: Callable, *args, repeats: int = 5, top: int = 10) -> dict[str, Any]:
    """Trace ``fn(*args)`` and time its dots alone. Returns {"dot_floor_s",
    "dot_floor_best_order_s", "dot_flops" (FLOPs of all dots, as counted),
    "dot_floor_flops_per_s", "distinct_dots", "dispatch_s", "top_dots": the ``top``
    costliest, each {"lhs", "rhs", "dims", "count", "ms_each", "gflops_per_s",
    "swapped_gflops_per_s"}}."""
    counts = collect_dots(jax.make_jaxpr(fn)(*args))
    if not counts:
        raise ValueError("the program has no dot_general to time")
    overhead = dispatch_s()
    rows = []
    for key, count in counts.items():
        each = max(time_dot(key, repeats) - overhead, 1e-7)
        swapped_each = max(time_dot(swapped(key), repeats) - overhead, 1e-7)
        rows.append((count * each, key, count, each, min(each, swapped_each)))
    rows.sort(key=lambda r: -r[0])
    floor = sum(r[0] for r in rows)
    best_order = sum(r[2] * r[4] for r in rows)
    total_flops = sum(_flops(key) * count for key, count in counts.items())
    return {
        "dot_floor_s": round(floor, 5),
        "dot_floor_best_order_s": round(best_order, 5),
        "dot_flops": total_flops,
        "dot_floor_flops_per_s": total_flops / floor,
        "distinct_dots": len(rows),
        "dispatch_s": round(overhead, 7),
        "top_dots": [{"lhs": f"{k[1]}{list(k[0])}", "rhs": f"{k[3]}{list(k[2])}", "dims": str(k[4]),
                      "count": c, "ms_each": round(1e3 * e, 3),
                      "gflops_per_s": round(_flops(k) / e / 1e9, 1),
                      "swapped_gflops_per_s": round(_flops(k) / b / 1e9, 1)} for _, k, c, e, b in rows[:top]],
    }
