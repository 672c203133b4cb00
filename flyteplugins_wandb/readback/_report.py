"""The "Weights & Biases" report tab as HTML, from plain values: a table of the task's runs and one inline SVG line
chart per scalar metric. Pure: it imports neither wandb nor flyte, reads no files and runs no scripts, so the page
renders in an air-gapped UI and every figure can be tested from the values that went in.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "MAX_CHARTS",
    "MAX_LINES_PER_CHART",
    "MAX_POINTS",
    "TAB_NAME",
    "Line",
    "ReportView",
    "RunRow",
    "downsample",
    "render_report",
]

TAB_NAME: Final = "Weights & Biases"
MAX_POINTS: Final = 400
"""Points drawn per line at most; longer histories are downsampled (each bucket's extremes, and the last point)."""
MAX_LINES_PER_CHART: Final = 16
MAX_CHARTS: Final = 64
_MAX_LAST_VALUES: Final = 12
# Colour-blind-safe (Okabe-Ito), then darker tones for more writers.
_COLOURS: Final = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
    "#332288", "#117733", "#882255", "#44AA99", "#999933", "#AA4499", "#661100", "#6699CC",
)  # fmt: skip
_W: Final = 420
_H: Final = 190
_LEFT: Final = 62
_RIGHT: Final = 10
_TOP: Final = 10
_BOTTOM: Final = 26
_FONT: Final = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
_CELL: Final = "border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top"


@dataclass(frozen=True)
class Line:
    """One writer's values of one metric, in step order."""

    label: str
    steps: Sequence[float]
    values: Sequence[float]


@dataclass(frozen=True)
class RunRow:
    """One process's part of a run: a row of the table."""

    run_id: str
    group: str | None
    writer: str
    """Which rank or worker wrote (``rank 2 (node 1)``, ``worker 0 rank 0 (primary)``, ``not distributed``)."""
    mode: str
    """``offline``, ``online`` or ``disabled``."""
    state: str
    last: Mapping[str, Any] = field(default_factory=dict)
    """The last logged value of each metric."""
    directory: str | None = None
    url: str | None = None
    problem: str | None = None
    """Why this writer's data is not shown (unreachable node, unreadable file), if it is not."""


@dataclass(frozen=True)
class ReportView:
    """Everything the tab shows."""

    rows: Sequence[RunRow]
    charts: Mapping[str, Sequence[Line]]
    """Metric name -> its lines (one per writer), in the order they should be drawn."""
    notes: Sequence[str] = ()
    """Warnings shown above the table: ranks that did not report, nodes whose files are out of reach."""
    updated: str = ""
    final: bool = True


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def downsample(steps: Sequence[float], values: Sequence[float], limit: int = MAX_POINTS) -> list[int]:
    """Indices of at most ``limit`` points that keep the curve's shape: the lowest and highest point of each of
    ``(limit - 1) // 2`` equal buckets, in order, then always the last point. All indices when there are no more
    than ``limit`` points."""
    n = len(values)
    if limit < 3:
        raise ValueError(f"limit must be at least 3 (first, extremes, last), got {limit}")
    if n <= limit:
        return list(range(n))
    buckets = (limit - 1) // 2
    size = (n - 1) / buckets
    kept: list[int] = []
    for b in range(buckets):
        lo, hi = int(b * size), min(n - 1, int((b + 1) * size))
        if hi <= lo:
            continue
        low = min(range(lo, hi), key=values.__getitem__)
        high = max(range(lo, hi), key=values.__getitem__)
        kept.extend(sorted({low, high}))
    kept.append(n - 1)
    return kept


def _number(x: float) -> str:
    return f"{x:.4g}"


def _value(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return value if len(value) <= 40 else value[:39] + "\u2026"
    return None  # histograms, tables, media: not for a table cell


def _attr(values: Sequence[float]) -> str:
    return " ".join(repr(v) for v in values)


def _span(lo: float, hi: float) -> tuple[float, float]:
    if hi > lo:
        return lo, hi
    pad = abs(lo) * 0.05 or 0.5  # a flat line sits in the middle of the chart
    return lo - pad, hi + pad


_Drawn = tuple[Line, list[float], list[float]]
"""A line as drawn: the line, and its finite (step, value) points after downsampling, as two lists."""


def _drawable(lines: Sequence[Line]) -> tuple[list[_Drawn], int]:
    """The lines a chart draws (at most MAX_LINES_PER_CHART, each with finite points only, downsampled) and how
    many non-finite values were left out."""
    drawn: list[_Drawn] = []
    skipped = 0
    for line in lines[:MAX_LINES_PER_CHART]:
        pairs = [(s, v) for s, v in zip(line.steps, line.values, strict=True) if _finite(s) and _finite(v)]
        skipped += len(line.values) - len(pairs)
        if not pairs:
            continue
        keep = downsample([p[0] for p in pairs], [p[1] for p in pairs])
        drawn.append((line, [pairs[i][0] for i in keep], [pairs[i][1] for i in keep]))
    return drawn, skipped


def _chart(metric: str, lines: Sequence[Line], index: int) -> str:
    drawn, skipped = _drawable(lines)
    title = html.escape(metric)
    if not drawn:
        return (
            f'<figure style="margin:0 16px 16px 0;display:inline-block;vertical-align:top">'
            f'<figcaption style="font-weight:600">{title}</figcaption><p>no finite values to draw</p></figure>'
        )
    x0, x1 = _span(min(min(d[1]) for d in drawn), max(max(d[1]) for d in drawn))
    y0, y1 = _span(min(min(d[2]) for d in drawn), max(max(d[2]) for d in drawn))
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return _TOP + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{title} by step" data-metric="{title}" style="display:block;{_FONT};font-size:11px">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#e5e5e5"/>'
            f'<text x="{_LEFT - 4}" y="{py(y) + 4:.1f}" text-anchor="end" fill="#555">{_number(y)}</text>'
        )
    parts.append(
        f'<text x="{_LEFT}" y="{_H - 8}" fill="#555">{_number(x0)}</text>'
        f'<text x="{_LEFT + pw / 2:.1f}" y="{_H - 8}" text-anchor="middle" fill="#555">step</text>'
        f'<text x="{_LEFT + pw}" y="{_H - 8}" text-anchor="end" fill="#555">{_number(x1)}</text>'
    )
    polylines, legend = _polylines_and_legend(drawn, px, py)
    parts += [*polylines, "</svg>"]
    note = _chart_note(len(lines), skipped)
    return (
        f'<figure id="wandb-chart-{index}" style="margin:0 16px 16px 0;display:inline-block;vertical-align:top">'
        f'<figcaption style="font-weight:600;margin-bottom:2px">{title}</figcaption>{"".join(parts)}'
        f'<div style="font-size:12px;max-width:{_W}px">{"".join(legend)}</div>{note}</figure>'
    )


def _polylines_and_legend(
    drawn: list[_Drawn], px: Callable[[float], float], py: Callable[[float], float]
) -> tuple[list[str], list[str]]:
    """Each drawn line as an SVG polyline (with its points as data attributes) and its legend entry."""
    polylines, legend = [], []
    for i, (line, xs, ys) in enumerate(drawn):
        colour = _COLOURS[i % len(_COLOURS)]
        label = html.escape(line.label)
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
        polylines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}" data-label="{label}" '
            f'data-steps="{_attr(xs)}" data-values="{_attr(ys)}"><title>{label}: last {_number(ys[-1])} '
            f"at step {_number(xs[-1])}</title></polyline>"
            f'<circle cx="{px(xs[-1]):.1f}" cy="{py(ys[-1]):.1f}" r="2.5" fill="{colour}"/>'
        )
        legend.append(
            f'<span style="margin-right:10px;display:inline-block;overflow-wrap:anywhere">'
            f'<span style="display:inline-block;width:10px;height:10px;background:{colour};margin-right:4px">'
            f"</span>{label}</span>"
        )
    return polylines, legend


def _chart_note(line_count: int, skipped: int) -> str:
    """What a chart left out (lines beyond the limit, non-finite values), or nothing."""
    notes = []
    if line_count > MAX_LINES_PER_CHART:
        notes.append(f"{line_count - MAX_LINES_PER_CHART} more lines not drawn")
    if skipped:
        notes.append(f"{skipped} non-finite values not drawn")
    return f'<div style="color:#8a6d3b">{html.escape("; ".join(notes))}</div>' if notes else ""


def _last_values(last: Mapping[str, Any]) -> str:
    shown = [(k, text) for k, v in sorted(last.items()) if (text := _value(v)) is not None]
    if not shown:
        return "-"
    cells = [f"{html.escape(k)} = {html.escape(t)}" for k, t in shown[:_MAX_LAST_VALUES]]
    if len(shown) > _MAX_LAST_VALUES:
        cells.append(f"(+{len(shown) - _MAX_LAST_VALUES} more)")
    return "<br>".join(cells)


def _row(r: RunRow) -> str:
    run = html.escape(r.run_id)
    if r.url:
        run = f'<a href="{html.escape(r.url)}" target="_blank" rel="noopener">{run}</a>'
    last = f'<span style="color:#a94442">{html.escape(r.problem)}</span>' if r.problem else _last_values(r.last)
    upload = f"<code>wandb sync {html.escape(r.directory)}</code>" if r.mode == "offline" and r.directory else "-"
    cells = (run, html.escape(r.group or "-"), html.escape(r.writer), html.escape(r.state), html.escape(r.mode))
    return "<tr>" + "".join(f'<td style="{_CELL}">{c}</td>' for c in (*cells, last, upload)) + "</tr>"


def render_report(view: ReportView) -> str:
    """The tab's HTML (a fragment, as Flyte's report tabs take): header, notes, runs table, charts."""
    ids = sorted({r.run_id for r in view.rows})
    if view.rows:
        by = "" if len(view.rows) == len(ids) else f", written by {len(view.rows)} processes"
        head = f"{len(ids)} W&amp;B run{'s' if len(ids) != 1 else ''}{by}"
    else:
        head = "No W&amp;B run was opened by this task"
    when = f" \u00b7 {'written at the end of the task' if view.final else 'refreshed while the task runs'}"
    if view.updated:
        when += f", {html.escape(view.updated)}"
    out = [
        f'<div class="flyteplugins-wandb-report" style="{_FONT};font-size:14px;color:#222">',
        f'<h2 style="margin:0 0 4px">Weights &amp; Biases</h2><p style="margin:0 0 12px;color:#555">{head}{when}</p>',
    ]
    if view.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in view.notes)
        out.append(
            '<div style="background:#fcf8e3;border:1px solid #faebcc;padding:6px 12px;margin-bottom:12px">'
            f'<ul style="margin:0;padding-left:18px;list-style:disc">{items}</ul></div>'
        )
    if view.rows:
        header = ("Run", "Group", "Written by", "State", "Mode", "Last values", "Upload")
        out.append(
            '<table style="border-collapse:collapse;margin-bottom:16px;font-size:13px"><thead><tr>'
            + "".join(f'<th style="{_CELL};background:#f5f5f5">{h}</th>' for h in header)
            + "</tr></thead><tbody>"
            + "".join(_row(r) for r in view.rows)
            + "</tbody></table>"
        )
    metrics = list(view.charts)
    if metrics:
        out.append('<div class="flyteplugins-wandb-charts">')
        out.extend(_chart(m, view.charts[m], i) for i, m in enumerate(metrics[:MAX_CHARTS]))
        out.append("</div>")
        if len(metrics) > MAX_CHARTS:
            out.append(f"<p>{len(metrics) - MAX_CHARTS} more metrics not charted</p>")
    elif view.rows:
        out.append("<p>No scalar metric was logged.</p>")
    out.append("</div>")
    return "".join(out)
