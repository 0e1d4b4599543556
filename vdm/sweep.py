"""Ablation sweeps: a base config plus a list (or product) of overrides, run one after
another, collected into a markdown table and a plot.

A sweep file (``experiments/<topic>/sweep.py``) is plain python:

    from vdm.sweep import Plot, Sweep, product

    SWEEPS = [Sweep(
        name="quality",                                   # one table and plot per sweep
        base="configs/quickstart.py",                     # config file [:arg]
        points=product({"model.layout": ["joint", "sequential", "interleaved"]}),
        fixed={"train.num_steps": 300},                   # every point
        metrics=["color_adherence", "train_step_s"],      # table columns
        plots=[Plot(x="model.layout", y=["color_adherence"], kind="bar")],
    )]
    CLUSTER = [...]                                       # optional: the cluster-scale variant

A point may also set ``"config": "configs/other.py[:arg]"``, its own base config (e.g.
text-to-video vs editing in one table). Each point runs ``tools/train.py`` (or ``tools/measure.py`` with ``tool="measure"``) with its
overrides as ``--config.k=v`` flags. A run is named by its overrides and a short hash of its
resolved config (``layout=joint-3f2a9c1b``), lives in ``<root>/<topic>/<sweep>/<name>``, is
done when its final metrics exist (then it is skipped), and is grouped in wandb by topic.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np

from vdm.plot import Panel, save_png

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = {"train": "tools/train.py", "measure": "tools/measure.py"}
BASE_KEY = "config"  # a point's own base config file


def product(axes: Mapping[str, Sequence] | None = None, **more: Sequence) -> list[dict[str, Any]]:
    """Every combination: product({"model.layout": [a, b]}, **{"data.num_frames": [8, 16]})."""
    axes = {**(axes or {}), **more}
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


@dataclasses.dataclass(frozen=True)
class Plot:
    """A panel per y metric: x a config key or a result key, one series per value of
    ``series`` (an override key; None = one series). Curves: x "frame" for per-frame metrics
    (y list-valued, such as "per_frame/t2v/color_presence"), or x a list-valued result that y
    pairs with point by point: a training run's "curve/step" or "curve/wall_s" against
    "curve/loss" (its logged loss, each a mean over log_every steps)."""
    x: str
    y: Sequence[str]
    series: str | None = None
    kind: str = "line"  # line | bar
    logx: bool = False
    logy: bool = False
    smooth: int = 1  # curves: each point the mean of this many consecutive ones (the last point's window)


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    base: str
    points: Sequence[Mapping[str, Any]]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tool: str = "train"
    tool_args: Sequence[str] = ()
    metrics: Sequence[str] = ()
    plots: Sequence[Plot] = ()

    def __post_init__(self):
        if self.tool not in TOOLS:
            raise ValueError(f"sweep {self.name!r}: tool {self.tool!r}; valid: {sorted(TOOLS)}")
        if not self.points:
            raise ValueError(f"sweep {self.name!r} has no points")

    def with_fixed(self, more: Mapping[str, Any]) -> "Sweep":
        """The same sweep with more settings fixed on every run (e.g. its cluster-scale variant)."""
        return dataclasses.replace(self, fixed={**self.fixed, **more})


@dataclasses.dataclass(frozen=True)
class Run:
    sweep: Sweep
    base: str  # the config file [:arg] it starts from
    overrides: dict[str, Any]  # the point's own (they name the run)
    config: ml_collections.ConfigDict  # resolved: base + fixed + point + --set
    all_overrides: dict[str, Any]
    workdir: str
    name: str

    def config_value(self, key: str) -> Any:
        """The value this run used for a dotted config key (or its base config)."""
        if key == BASE_KEY:
            return _short(self.base)
        node = self.config
        for p in key.split("."):
            node = node[p]
        return node


# --------------------------------------------------------------------------------------------
# Loading and resolving


def load_sweep_file(path: str, *, cluster: bool = False) -> tuple[str, list[Sweep]]:
    """(topic, sweeps) of a sweep file; the topic is its folder's name."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no sweep file {path!r}")
    spec = importlib.util.spec_from_file_location("sweep_" + os.path.basename(os.path.dirname(path)), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    attr = "CLUSTER" if cluster else "SWEEPS"
    if not hasattr(mod, attr):
        raise ValueError(f"{path} defines no {attr} (a list of vdm.sweep.Sweep)")
    topic = getattr(mod, "TOPIC", os.path.basename(os.path.dirname(os.path.abspath(path))))
    return topic, list(getattr(mod, attr))


def load_config(base: str) -> ml_collections.ConfigDict:
    """get_config(arg) of 'configs/X.py[:arg]' (relative to the repository root)."""
    path, _, arg = base.partition(":")
    full = path if os.path.isabs(path) else os.path.join(ROOT, path)
    if not os.path.exists(full):
        raise FileNotFoundError(f"no config file {path!r}")
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    spec = importlib.util.spec_from_file_location("config_" + os.path.basename(path)[:-3], full)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg or None)


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Set dotted keys; an unknown key or a value of the wrong type is an error naming it."""
    config = ml_collections.ConfigDict(config.to_dict())
    for key, value in overrides.items():
        node = config
        parts = key.split(".")
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
                raise KeyError(f"override {key!r}: no config field {p!r}")
            node = node[p]
        if parts[-1] not in node:
            raise KeyError(f"override {key!r}: no config field {parts[-1]!r}")
        old = node[parts[-1]]
        if isinstance(old, tuple) and isinstance(value, list):
            value = tuple(value)
        try:
            node[parts[-1]] = value
        except TypeError as e:
            raise TypeError(f"override {key}={value!r}: {e}") from None
    return config


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """['train.num_steps=100', 'model.layout=joint'] -> {key: python value}."""
    out = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--set {item!r}: expected key=value")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def config_hash(config: ml_collections.ConfigDict) -> str:
    """8 hex digits of the resolved config. Left out: wandb settings, and the fields the
    codebase added later while they hold their earlier behaviour
    (``config_upgrade.drop_added_defaults``), so that a new knob at its old behaviour does not
    rename, and so rerun, the finished runs of a sweep."""
    from vdm.config_upgrade import drop_added_defaults

    d = json.loads(json.dumps(config.to_dict(), default=str))  # plain, tuples as lists
    d.pop("wandb", None)
    return hashlib.sha1(json.dumps(drop_added_defaults(d), sort_keys=True).encode()).hexdigest()[:8]


def _short(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(_short(v) for v in value)
    text = str(value)
    if text.startswith("configs/"):  # a base config: its file name (and arg)
        text = text[len("configs/"):].replace(".py", "")
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in text)


GENERIC = ("enabled", "dropout", "guidance", "config", "steps", "num", "tasks")


def key_label(key: str) -> str:
    """'model.layout' -> 'layout'; generic last parts keep their parent ('image.enabled')."""
    parts = key.split(".")
    return ".".join(parts[-2:]) if parts[-1] in GENERIC and len(parts) > 1 else parts[-1]


def run_name(overrides: Mapping[str, Any], config: ml_collections.ConfigDict) -> str:
    """'layout=joint,num_frames=16-3f2a9c1b': the point's overrides (`key_label`) + hash."""
    parts = [f"{key_label(k)}={_short(v)}" for k, v in overrides.items()]
    return (",".join(parts) or "base") + "-" + config_hash(config)


def expand(topic: str, sweep: Sweep, *, root: str, extra: Mapping[str, Any] | None = None) -> list[Run]:
    """The runs of a sweep: base + fixed + point + extra, resolved and named."""
    bases: dict[str, ml_collections.ConfigDict] = {}
    runs = []
    for point in sweep.points:
        base = point.get(BASE_KEY, sweep.base)
        if base not in bases:
            bases[base] = load_config(base)
        overrides = {**sweep.fixed, **{k: v for k, v in point.items() if k != BASE_KEY}, **(extra or {})}
        config = apply_overrides(bases[base], overrides)
        name = run_name(point, config)
        runs.append(Run(sweep, base, dict(point), config, overrides,
                        os.path.join(root, topic, sweep.name, name), name))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"sweep {sweep.name!r}: two points resolve to the same config: {names}")
    return runs


def share_identical_runs(runs_of: Mapping[str, list[Run]]) -> dict[str, list[Run]]:
    """Runs of one sweep file that resolve to the same config (same tool, same hash) share the
    first one's folder: it is trained once, and each sweep keeps its own label for its row
    (e.g. a second sweep's baseline that is a point of the first)."""
    first: dict[tuple, str] = {}
    out = {}
    for name, runs in runs_of.items():
        out[name] = []
        for run in runs:
            key = (run.sweep.tool, tuple(run.sweep.tool_args), config_hash(run.config))
            workdir = first.setdefault(key, run.workdir)
            out[name].append(run if workdir == run.workdir else dataclasses.replace(run, workdir=workdir))
    return out


# --------------------------------------------------------------------------------------------
# Running


def _flag_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_flag_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def command(run: Run, topic: str, *, python: str = sys.executable) -> list[str]:
    cmd = [python, TOOLS[run.sweep.tool], "--config", run.base, "--workdir", run.workdir]
    cmd += [f"--config.{k}={_flag_value(v)}" for k, v in run.all_overrides.items()]
    if run.sweep.tool == "train":
        cmd.append(f"--config.wandb.group={topic}")
    return cmd + list(run.sweep.tool_args)


def result_path(run: Run) -> str:
    """The file whose presence means the run is done."""
    if run.sweep.tool == "measure":
        return os.path.join(run.workdir, "measure.json")
    return os.path.join(run.workdir, "eval", f"metrics_step_{run.config.train.num_steps:07d}.json")


def is_done(run: Run) -> bool:
    return os.path.exists(result_path(run))


def execute(run: Run, topic: str) -> int:
    """Run a point in a subprocess from the repository root; its output goes to
    workdir/sweep.log. Returns the exit code."""
    os.makedirs(run.workdir, exist_ok=True)
    with open(os.path.join(run.workdir, "sweep.log"), "w") as log:
        log.write(shlex.join(command(run, topic)) + "\n")
        log.flush()
        proc = subprocess.run(command(run, topic), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return proc.returncode


# --------------------------------------------------------------------------------------------
# Collecting


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = v
    return out


def final_metrics(run: Run) -> dict[str, Any] | None:
    """A done run's metrics, flat (per-frame curves as lists); None if not done. Train runs
    add train_step_s (median over logged intervals; as noisy as the machine),
    train_gflop_per_step (analytic, from the config as the trainer's MFU meter counts it:
    compute, free of noise),
    final_loss and train_wall_s."""
    if not is_done(run):
        return None
    with open(result_path(run)) as f:
        raw = json.load(f)
    out = _flatten(raw)
    tasks = raw.get("tasks", []) if isinstance(raw, dict) else []
    if len(tasks) == 1 and tasks[0] != "t2v":  # one task: its metrics also without the prefix,
        prefix = tasks[0] + "/"                # so that runs of different tasks share columns
        out.update({k[len(prefix):]: v for k, v in list(out.items()) if k.startswith(prefix)})
        out.update({k.replace(f"per_frame/{tasks[0]}/", "per_frame/task/"): v
                    for k, v in list(out.items()) if k.startswith(f"per_frame/{tasks[0]}/")})
    elif len(tasks) == 1:
        out.update({k.replace("per_frame/t2v/", "per_frame/task/"): v
                    for k, v in list(out.items()) if k.startswith("per_frame/t2v/")})
    if run.sweep.tool == "train":
        path = os.path.join(run.workdir, "metrics.jsonl")
        rows = []
        if os.path.exists(path):
            with open(path) as f:
                rows = [json.loads(line) for line in f if line.strip()]
        rates = [r["steps_per_s"] for r in rows if r.get("steps_per_s", 0) > 0]
        if rates:
            out["train_step_s"] = statistics.median(1.0 / r for r in rates)
        from vdm.mfu import train_step_flops  # jax: only when collecting

        out["train_gflop_per_step"] = train_step_flops(run.config) / 1e9
        logged = [r for r in rows if "loss" in r]
        if logged:
            out["final_loss"] = logged[-1]["loss"]
            out["curve/step"] = [r["step"] for r in logged]
            out["curve/loss"] = [r["loss"] for r in logged]
            if all("time" in r for r in rows[:1] + logged):  # from the first row: after compiling
                out["curve/wall_s"] = [r["time"] - rows[0]["time"] for r in logged]
        for r in rows:
            if "train_wall_s" in r:
                out["train_wall_s"] = r["train_wall_s"]
    return out


def format_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.3e}" if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3) else f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(format_cell(x) for x in v[:4]) + (", ...]" if len(v) > 4 else "]")
    return str(v)


KEPT = " (kept)"  # marks a row copied from the previous results.md: its run is not here


def table(runs: Sequence[Run], results: Sequence[dict | None], metrics: Sequence[str],
          kept: Sequence[bool] = ()) -> str:
    """Markdown: one row per run; the overrides that vary, then the metrics."""
    keys = list(dict.fromkeys(k for r in runs for k in r.overrides))
    head = [key_label(k) for k in keys] + list(metrics) + ["run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (run, res) in enumerate(zip(runs, results)):
        cells = [format_cell(run.overrides.get(k)) for k in keys]
        cells += [format_cell(res.get(m)) if res else "not run" for m in metrics]
        mark = KEPT if i < len(kept) and kept[i] else ""
        lines.append("| " + " | ".join(cells + [f"`{run.name}`{mark}"]) + " |")
    return "\n".join(lines) + "\n"


def _parse_cell(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell


def previous_rows(path: str) -> dict[str, dict[str, Any]]:
    """The rows of an earlier results.md, by run name: {name: {column: value}}, numbers as
    floats. A run folder lives on the machine that ran it; collecting elsewhere (or after the
    folder is cleaned) keeps its row instead of turning it into "not run"."""
    if not os.path.exists(path):
        return {}
    rows: dict[str, dict[str, Any]] = {}
    head: list[str] = []
    with open(path) as f:
        for line in f:
            if not line.startswith("|"):  # a table ends
                head = []
                continue
            if line.startswith("|---"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[-1] == "run":
                head = cells
                continue
            if len(cells) != len(head) or "not run" in cells:
                continue
            name = cells[-1].removesuffix(KEPT).strip("`")
            rows[name] = {h: _parse_cell(c) for h, c in zip(head[:-1], cells[:-1]) if c}
    return rows


def _label(value: Any) -> str:
    return _short(value) if not isinstance(value, str) else value


def plot_panels(runs: Sequence[Run], results: Sequence[dict | None], plot: Plot) -> list[Panel]:
    panels = []
    for y in plot.y:
        series: dict[str, tuple[list, list]] = {}
        for run, res in zip(runs, results):
            if not res or y not in res or isinstance(res[y], str):  # a kept cell that is not a number
                continue
            label = _label(run.config_value(plot.series)) if plot.series else y
            xs, ys = series.setdefault(label, ([], []))
            if plot.x == "frame" or isinstance(res.get(plot.x), list):  # a curve
                values = [float("nan") if v is None else float(v) for v in res[y]]
                along = range(len(values)) if plot.x == "frame" else res[plot.x]
                if len(along) != len(values):
                    raise ValueError(f"plot of {y} against {plot.x}: {len(values)} values, {len(along)} x")
                k = max(1, min(plot.smooth, len(values)))
                xs.extend(list(along)[k - 1:])
                ys.extend(np.convolve(values, np.ones(k) / k, mode="valid").tolist())
            else:
                x = res[plot.x] if plot.x in res else run.config_value(plot.x)  # a result or a config key
                xs.append(_label(x) if plot.kind == "bar" else x)
                ys.append(float(res[y]) if res[y] is not None else float("nan"))
        if plot.kind == "line":
            for label, (xs, ys) in series.items():
                order = sorted(range(len(xs)), key=lambda i: xs[i])
                series[label] = ([xs[i] for i in order], [ys[i] for i in order])
        panels.append(Panel(title=y, xlabel=plot.x, ylabel="", series=series, kind=plot.kind,
                            logx=plot.logx, logy=plot.logy))
    return panels


def collect(topic: str, sweeps: Sequence[Sweep], runs_of: Mapping[str, list[Run]], out_dir: str) -> str:
    """Write out_dir/results.md (a table per sweep) and out_dir/plot_<sweep>.png; returns the
    markdown."""
    earlier = previous_rows(os.path.join(out_dir, "results.md"))
    parts = [f"# {topic}: results\n",
             "Written by `tools/sweep.py`; one row per run. Rerun to update. A row marked "
             f"`{KEPT.strip()}` is copied from the previous collect: its run folder is not here.\n"]
    for sweep in sweeps:
        runs = runs_of[sweep.name]
        results = [final_metrics(r) for r in runs]
        kept = [res is None and r.name in earlier for r, res in zip(runs, results)]
        results = [earlier[r.name] if k else res for r, res, k in zip(runs, results, kept)]
        parts.append(f"## {sweep.name}\n")
        fixed = ", ".join(f"`{k}={_flag_value(v)}`" for k, v in runs[0].all_overrides.items()
                          if k not in runs[0].overrides) if runs else ""
        parts.append(f"Base `{sweep.base}` ({sweep.tool}){'; every run: ' + fixed if fixed else ''}.\n")
        metrics = list(sweep.metrics) or sorted({k for r in results if r for k, v in r.items()
                                                 if isinstance(v, (int, float))})
        parts.append(table(runs, results, metrics, kept))
        panels = [p for plot in sweep.plots for p in plot_panels(runs, results, plot)]
        if panels and any(r for r in results):
            name = f"plot_{sweep.name}.png"
            save_png(os.path.join(out_dir, name), panels)
            parts.append(f"![{sweep.name}]({name})\n")
    text = "\n".join(parts)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    return text
