"""Wall time of a JAX call: each call blocked on until its results are ready."""
from __future__ import annotations

import time
from typing import Callable

import jax


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn()``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times
