"""Preemption: SIGTERM asks the run to save a checkpoint and leave cleanly.

Several processes must agree on the step at which they all save. With
``jax.distributed`` up, JAX's preemption service catches SIGTERM on any process
and ``reached_preemption_sync_point(step)`` turns true on every process at the
same step (it must be asked at every step, from the same starting step). A lone
process has no such service: a Python SIGTERM handler sets a flag instead.
"""
from __future__ import annotations

import signal
import threading

from jax._src import distributed
from jax.experimental import multihost_utils


class PreemptionWatch:
    """``reached(step)`` is true once a stop was asked for, at the same step on every process.

    Use as a context manager: the previous SIGTERM handler is put back on exit.
    """

    def __init__(self):
        self._service = distributed.global_state.client is not None
        self._asked = threading.Event()
        self._previous = None

    def __enter__(self) -> "PreemptionWatch":
        # Signal handlers can only be set from the main thread; elsewhere (a test runner's
        # worker thread) the run simply cannot be preempted by a signal.
        if not self._service and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_sigterm(self, signum, frame) -> None:
        self._asked.set()

    def reached(self, step: int) -> bool:
        if self._service:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._asked.is_set()
