"""Small charts as PNG files with Pillow (already a dependency): line and grouped-bar panels
side by side, for experiment results. Not a plotting library: enough to read a sweep.

    panels = [Panel("step time", "frames", "s", kind="line", series={"joint": ([8, 16], [0.1, 0.3])})]
    save_png("plot.png", panels)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
PANEL_W, PANEL_H = 420, 320
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 62, 14, 30, 70


@dataclasses.dataclass
class Panel:
    """One chart. line: series name -> (xs, ys), numeric xs. bar: series name -> (categories,
    values); bars are grouped by category. NaN values are left out."""
    title: str
    xlabel: str
    ylabel: str
    series: dict[str, tuple[Sequence, Sequence[float]]]
    kind: str = "line"
    logx: bool = False
    logy: bool = False


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 2.5, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-2:
        return f"{v:.1e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:.3g}"


def _draw_panel(draw: ImageDraw.ImageDraw, ox: int, oy: int, panel: Panel, font) -> None:
    x0, y0 = ox + MARGIN_L, oy + MARGIN_T
    x1, y1 = ox + PANEL_W - MARGIN_R, oy + PANEL_H - MARGIN_B
    draw.text((ox + PANEL_W // 2, oy + 8), panel.title, fill="black", font=font, anchor="mt")
    draw.rectangle([x0, y0, x1, y1], outline="black")
    fy = (lambda v: math.log10(v)) if panel.logy else (lambda v: v)
    fx = (lambda v: math.log10(v)) if panel.logx else (lambda v: v)
    ys = [fy(v) for _, (_, vals) in panel.series.items() for v in vals
          if v is not None and math.isfinite(v) and (v > 0 or not panel.logy)]
    if not ys:
        draw.text(((x0 + x1) // 2, (y0 + y1) // 2), "no data", fill="gray", font=font, anchor="mm")
        return
    lo, hi = min(ys), max(ys)
    if not panel.logy and panel.kind == "bar":
        lo = min(lo, 0.0)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    lo, hi = (lo if panel.kind == "bar" and lo == 0 and not panel.logy else lo - pad), hi + pad

    def py(v):
        return y1 - (fy(v) - lo) / (hi - lo) * (y1 - y0)

    for t in _nice_ticks(lo, hi):
        y = y1 - (t - lo) / (hi - lo) * (y1 - y0)
        draw.line([x0 - 4, y, x0, y], fill="black")
        draw.line([x0 + 1, y, x1 - 1, y], fill=(230, 230, 230))
        draw.text((x0 - 6, y), _fmt(10 ** t if panel.logy else t), fill="black", font=font, anchor="rm")
    draw.text((ox + 4, y0 - 4), panel.ylabel, fill="black", font=font, anchor="lb")
    draw.text(((x0 + x1) // 2, y1 + 26), panel.xlabel, fill="black", font=font, anchor="mt")

    names = list(panel.series)
    if panel.kind == "bar":
        cats = list(dict.fromkeys(c for _, (cs, _) in panel.series.items() for c in cs))
        group = (x1 - x0) / max(len(cats), 1)
        bar_w = group * 0.8 / max(len(names), 1)
        crowded = any(draw.textlength(str(c), font=font) > group - 4 for c in cats)
        for ci, cat in enumerate(cats):
            gx = x0 + ci * group + group * 0.1
            label = str(cat)
            while len(label) > 3 and draw.textlength(label, font=font) > 2 * group - 8:
                label = label[:-2] + "…"
            stagger = 11 if ci % 2 and crowded else 0  # long labels alternate between two rows
            draw.text((x0 + (ci + 0.5) * group, y1 + 4 + stagger), label, fill="black", font=font, anchor="mt")
            for si, name in enumerate(names):
                cs, vals = panel.series[name]
                if cat not in list(cs):
                    continue
                v = vals[list(cs).index(cat)]
                if v is None or not math.isfinite(v) or (panel.logy and v <= 0):
                    continue
                base = y1 if panel.logy else py(max(0.0, 10 ** lo if panel.logy else 0.0))
                bx = gx + si * bar_w
                draw.rectangle([bx, min(py(v), base), bx + bar_w - 1, max(py(v), base)],
                               fill=COLORS[si % len(COLORS)])
    else:
        xs_all = [fx(x) for _, (xs, _) in panel.series.items() for x in xs]
        xlo, xhi = min(xs_all), max(xs_all)
        if xhi == xlo:
            xlo, xhi = xlo - 1, xhi + 1
        xpad = (xhi - xlo) * 0.05
        xlo, xhi = xlo - xpad, xhi + xpad

        def px(v):
            return x0 + (fx(v) - xlo) / (xhi - xlo) * (x1 - x0)

        ticks = sorted({x for _, (xs, _) in panel.series.items() for x in xs})
        if len(ticks) > 10:
            ticks = [10 ** t if panel.logx else t for t in _nice_ticks(xlo, xhi)]
        for t in ticks:
            draw.line([px(t), y1, px(t), y1 + 4], fill="black")
            draw.text((px(t), y1 + 6), _fmt(t), fill="black", font=font, anchor="mt")
        for si, name in enumerate(names):
            xs, vals = panel.series[name]
            color = COLORS[si % len(COLORS)]
            run: list[tuple[float, float]] = []  # a missing value breaks the line
            for x, v in list(zip(xs, vals)) + [(None, None)]:
                if x is not None and v is not None and math.isfinite(v) and (v > 0 or not panel.logy):
                    run.append((px(x), py(v)))
                    continue
                if len(run) > 1:
                    draw.line(run, fill=color, width=2)
                for cx, cy in run:
                    draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=color)
                run = []
    # Legend below the axis label.
    lx, ly = x0, y1 + 42
    for si, name in enumerate(names):
        w = draw.textlength(str(name), font=font) + 22
        if lx + w > x1 and lx > x0:
            lx, ly = x0, ly + 13
        draw.rectangle([lx, ly + 2, lx + 10, ly + 10], fill=COLORS[si % len(COLORS)])
        draw.text((lx + 13, ly), str(name), fill="black", font=font)
        lx += w


def render(panels: Sequence[Panel], columns: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3] image of the panels on a grid (up to 3 across)."""
    if not panels:
        raise ValueError("nothing to plot: no panels")
    columns = columns or min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    image = Image.new("RGB", (columns * PANEL_W, rows * PANEL_H), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for i, panel in enumerate(panels):
        _draw_panel(draw, (i % columns) * PANEL_W, (i // columns) * PANEL_H, panel, font)
    return np.asarray(image)


def save_png(path: str, panels: Sequence[Panel], columns: int | None = None) -> str:
    Image.fromarray(render(panels, columns)).save(path)
    return path
