"""Where a compiled program's time goes: its XLA ops, timed by the JAX profiler and
grouped by what they do.

    profile = profile_ops(lambda: jax.block_until_ready(compiled(*args)), compiled.as_text(), runs=3)

Each op event of the trace (named after its HLO instruction) is put in one class,
read from the instruction and the computation it calls:
  matmul          a dot or convolution (XLA fuses neighbouring elementwise work into it);
  reduction       a reduce (softmax sums, LayerNorm statistics, gradient sums over the batch);
  transcendental  elementwise work with exp / log / tanh / erf / logistic (softmax, GELU);
  data_movement   copies, transposes, broadcasts, slices, concatenations, pads: no arithmetic;
  elementwise     the remaining arithmetic (adds, multiplies, modulation, optimizer updates).
An op is one trace event however many threads it runs on, so op time is close to wall
time. The ``matmul`` share bounds what faster non-matmul work could buy: if
everything else were free, the program would take ``matmul_share`` of its time.
"""
from __future__ import annotations

import collections
import functools
import glob
import gzip
import json
import os
import re
import tempfile
from typing import Callable

import jax

CLASSES = ("matmul", "reduction", "transcendental", "data_movement", "elementwise")
# Ops that only hold other ops: their events would count their contents twice.
_CONTAINERS = {"while", "call", "conditional", "async-start", "async-done", "tuple",
               "get-tuple-element", "parameter", "constant", "bitcast"}
_MATMUL = re.compile(r"\b(dot|convolution)\(")
_REDUCE = re.compile(r"\breduce(-window)?\(")
_TRANSCENDENTAL = re.compile(r"\b(exponential|exponential-minus-one|log|log-plus-one|tanh|erf|"
                             r"logistic|power|sine|cosine)\(")
_ARITHMETIC = re.compile(r"\b(add|subtract|multiply|divide|maximum|minimum|negate|abs|sqrt|rsqrt|"
                         r"select|compare|convert|and|or|clamp|sign|floor|ceil|round-nearest-even|"
                         r"remainder|xor|not)\(")  # transcendentals are classed before this
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = ((?:\([^=]*?\))|\S+) ([\w\-]+)\(")
_INLINED = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")
_CALLS = re.compile(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)")


def parse_hlo(hlo_text: str) -> dict[str, tuple[str, str, str]]:
    """The instructions that run as ops of their own (those of the entry computation and of
    loop bodies, not the insides of fusions or reducers): name -> (shape, opcode, text of
    the instruction followed by the computations it calls, and theirs, three levels down)."""
    computations: dict[str, list[str]] = {}
    current = None
    for line in hlo_text.splitlines():
        header = None if line.startswith(" ") else _COMPUTATION.match(line)
        if header:
            current = header.group(1)
            computations[current] = []
        elif current is not None:
            computations[current].append(line)

    @functools.lru_cache(maxsize=None)  # a fused computation is called by many instructions
    def body(name: str, depth: int = 0) -> str:
        lines = computations.get(name, [])
        text = "\n".join(lines)
        if depth < 3:
            text += "\n" + "\n".join(body(c, depth + 1) for c in _CALLS.findall(text))
        return text

    inlined = set()  # computations run inside another op, never as ops of their own
    for lines in computations.values():
        for line in lines:
            inlined.update(_INLINED.findall(line))
    out = {}
    for name, lines in computations.items():
        if name in inlined:
            continue
        for line in lines:
            m = _INSTRUCTION.match(line)
            if m:
                called = "\n".join(body(c) for c in _CALLS.findall(line))
                out[m.group(1)] = (m.group(2), m.group(3), line + "\n" + called)
    return out


def classify(opcode: str, text: str) -> str:
    """The class of one instruction, given its opcode and its text with called computations."""
    if _MATMUL.search(text) or opcode in ("dot", "convolution"):
        return "matmul"
    if _REDUCE.search(text) or opcode.startswith("reduce"):
        return "reduction"
    if _TRANSCENDENTAL.search(text):
        return "transcendental"
    if opcode == "fusion":
        # the fusion's own line holds only its operands; its called computation holds the work
        work = text.split("\n", 1)[1] if "\n" in text else ""
        return "elementwise" if _ARITHMETIC.search(work) else "data_movement"
    return "elementwise" if _ARITHMETIC.search(f" {opcode}(") else "data_movement"


def _events(trace_dir: str) -> list[dict]:
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True))
    if not paths:
        raise RuntimeError(f"the profiler wrote no trace under {trace_dir}")
    with gzip.open(paths[-1]) as f:
        return [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]


def profile_ops(run: Callable[[], object], hlo_text: str, runs: int = 3, top: int = 10) -> dict:
    """Run ``run`` (one blocking call of the compiled program) ``runs`` times under the
    profiler and group its op time by class.

    Returns {"op_s": op time per run; "by_class": {class: share};
    "matmul_share"; "top_ops": the ``top`` most expensive ops, each
    {"name", "class", "shape", "ms"}; "ops_seen": distinct ops in the trace}."""
    if runs < 1:
        raise ValueError(f"profile_ops needs runs >= 1, got {runs}")
    instructions = parse_hlo(hlo_text)
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        try:
            for _ in range(runs):
                run()
        finally:
            jax.profiler.stop_trace()
        events = _events(trace_dir)
    per_op: collections.Counter = collections.Counter()
    for e in events:
        inst = instructions.get(e["name"])
        if inst is not None and inst[1] not in _CONTAINERS:
            per_op[e["name"]] += e["dur"] * 1e-6 / runs  # µs -> s per run
    if not per_op:
        raise RuntimeError("no op of the program appeared in the trace; is it the compiled one?")
    op_class = {name: classify(instructions[name][1], instructions[name][2]) for name in per_op}
    by_class = dict.fromkeys(CLASSES, 0.0)
    for name, s in per_op.items():
        by_class[op_class[name]] += s
    total = sum(by_class.values())
    return {
        "op_s": round(total, 4),
        "by_class": {k: round(v / total, 4) for k, v in by_class.items()},
        "matmul_share": round(by_class["matmul"] / total, 4),
        "top_ops": [{"name": n, "class": op_class[n], "shape": instructions[n][0], "ms": round(1e3 * s, 2)}
                    for n, s in per_op.most_common(top)],
        "ops_seen": len(per_op),
    }
