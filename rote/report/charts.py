"""Small inline-SVG charts, drawn here so the report page needs no script, CDN or network at all.

Each chart has one signature colour (see `COLORS`) so a screenshot test can tell that marks were drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from html import escape

COLORS = {
    "saved_line": "#1d4ed8",
    "saved_area": "#bfdbfe",
    "roi_pos": "#16a34a",
    "roi_neg": "#dc2626",
    "bottleneck_routine": "#ea580c",
    "bottleneck_automation": "#0891b2",
    "bottleneck_wait": "#9333ea",
    "candidate": "#db2777",
    "axis": "#6b7280",
    "grid": "#e5e7eb",
    "text": "#111827",
}
FONT = "font-family='system-ui, sans-serif'"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def empty(width: int, height: int, message: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'"
        f" aria-label='{escape(message)}'><rect width='100%' height='100%' fill='#f9fafb'/>"
        f"<text x='{width / 2}' y='{height / 2}' text-anchor='middle' {FONT} font-size='14'"
        f" fill='{COLORS['axis']}'>{escape(message)}</text></svg>"
    )


def line_chart(
    points: Sequence[tuple[datetime, float]],
    *,
    title: str,
    unit: str,
    width: int = 900,
    height: int = 300,
) -> str:
    """Cumulative series over time: area under a line, time on x."""
    if len(points) < 1:
        return empty(width, height, f"{title}: no production runs yet")
    left, right, top, bottom = 70, 20, 30, 45
    pw, ph = width - left - right, height - top - bottom
    xs = [p[0].timestamp() for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1
    ticks = _nice_ticks(min(0.0, min(ys)), max(ys) if max(ys) > 0 else 1.0)
    y0, y1 = ticks[0], ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'"
        f" aria-label='{escape(title)}'>"
    ]
    for t in ticks:
        parts.append(
            f"<line x1='{left}' x2='{left + pw}' y1='{sy(t):.1f}' y2='{sy(t):.1f}'"
            f" stroke='{COLORS['grid']}'/>"
        )
        parts.append(
            f"<text x='{left - 8}' y='{sy(t) + 4:.1f}' text-anchor='end' {FONT} font-size='11'"
            f" fill='{COLORS['axis']}'>{t:g} {escape(unit)}</text>"
        )
    coords = [(sx(x), sy(y)) for x, y in zip(xs, ys, strict=True)]
    if len(coords) == 1:
        coords = [(left, coords[0][1]), (left + pw, coords[0][1])]
    base = sy(max(y0, 0.0))
    area = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    parts.append(
        f"<polygon points='{coords[0][0]:.1f},{base:.1f} {area} {coords[-1][0]:.1f},{base:.1f}'"
        f" fill='{COLORS['saved_area']}'/>"
    )
    parts.append(f"<polyline points='{area}' fill='none' stroke='{COLORS['saved_line']}' stroke-width='3'/>")
    for frac in (0.0, 0.5, 1.0):
        x = x0 + frac * (x1 - x0)
        label = datetime.fromtimestamp(x, tz=points[0][0].tzinfo).strftime("%Y-%m-%d %H:%M")
        anchor = "start" if frac == 0 else "end" if frac == 1 else "middle"
        parts.append(
            f"<text x='{sx(x):.1f}' y='{top + ph + 20}' text-anchor='{anchor}' {FONT} font-size='11'"
            f" fill='{COLORS['axis']}'>{escape(label)}</text>"
        )
    parts.append(f"<line x1='{left}' x2='{left}' y1='{top}' y2='{top + ph}' stroke='{COLORS['axis']}'/>")
    parts.append(
        f"<line x1='{left}' x2='{left + pw}' y1='{top + ph}' y2='{top + ph}' stroke='{COLORS['axis']}'/>"
    )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    bars: Sequence[tuple[str, float, str]],
    *,
    title: str,
    fmt: str = "{:.1f}",
    width: int = 900,
    bar_height: int = 22,
    label_width: int = 320,
    max_value: float | None = None,
) -> str:
    """Horizontal bars (label, value, colour); negative values grow left from a zero line."""
    if not bars:
        return empty(width, 80, f"{title}: nothing to show yet")
    top, gap = 10, 6
    height = top * 2 + len(bars) * (bar_height + gap)
    lo = min(0.0, min(v for _, v, _ in bars))
    hi = max(0.0, max(v for _, v, _ in bars))
    if max_value is not None:
        hi = max(hi, max_value)
    if hi == lo:
        hi = lo + 1.0
    plot_left, plot_w = label_width + 10, width - label_width - 90

    def sx(v: float) -> float:
        return plot_left + (v - lo) / (hi - lo) * plot_w

    zero = sx(0.0)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'"
        f" aria-label='{escape(title)}'>"
    ]
    for i, (label, value, color) in enumerate(bars):
        y = top + i * (bar_height + gap)
        short = label if len(label) <= 48 else label[:47] + "…"
        parts.append(
            f"<text x='{label_width}' y='{y + bar_height * 0.7:.1f}' text-anchor='end' {FONT}"
            f" font-size='12' fill='{COLORS['text']}'><title>{escape(label)}</title>"
            f"{escape(short)}</text>"
        )
        x, w = (zero, sx(value) - zero) if value >= 0 else (sx(value), zero - sx(value))
        parts.append(
            f"<rect x='{x:.1f}' y='{y}' width='{max(w, 1.0):.1f}' height='{bar_height}' fill='{color}'/>"
        )
        tx = x + w + 6 if value >= 0 else x - 6
        anchor = "start" if value >= 0 else "end"
        if value < 0 and tx < plot_left + 40:
            tx, anchor = zero + 6, "start"
        parts.append(
            f"<text x='{tx:.1f}' y='{y + bar_height * 0.7:.1f}' text-anchor='{anchor}' {FONT}"
            f" font-size='11' fill='{COLORS['axis']}'>{escape(fmt.format(value))}</text>"
        )
    parts.append(
        f"<line x1='{zero:.1f}' x2='{zero:.1f}' y1='{top - 4}' y2='{height - top + 4}'"
        f" stroke='{COLORS['axis']}'/>"
    )
    parts.append("</svg>")
    return "".join(parts)
