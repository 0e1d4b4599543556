"""Run training (or any Python) in child processes for tests: bounded waits, output by line,
and nothing left running when a test fails."""
from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(devices: int, cache_dir: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
               WANDB_MODE="disabled", PYTHONPATH=ROOT, PYTHONUNBUFFERED="1",
               # Tiny programs: XLA's optimisation passes cost more than they save.
               JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    if cache_dir:  # children of one test share compiled programs
        env.update(JAX_COMPILATION_CACHE_DIR=cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class Child:
    """A child process whose merged stdout/stderr is read line by line in the background."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str = ROOT):
        self.proc = subprocess.Popen([sys.executable, *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first output line matching ``pattern`` (kills the child and fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if m := re.search(pattern, line):
                return m
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m
        self.kill()
        raise AssertionError(f"no line matching {pattern!r} within {timeout:g} s; output:\n" + self.output)

    def finish(self, timeout: float) -> int:
        """Wait for the exit (kills the child and fails after ``timeout``); the exit code."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout:g} s; output:\n" + self.output)
        self._drain()
        return self.proc.returncode

    def _drain(self) -> None:
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)
