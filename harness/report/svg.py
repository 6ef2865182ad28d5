"""Inline SVG charts for the report: a labelled scatter and line charts (no script, no network).

Every point carries a ``<title>`` (the browser's hover label) and ``data-label`` (the report's
tooltip); visible labels are placed by :func:`harness.labels.place_labels`, so none overlaps.
"""

from __future__ import annotations

import math
from html import escape

from harness.labels import place_labels

WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50
FONT = 11
CHAR_W = 6.2  # px per character at FONT, for label boxes
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def nice_ticks(low: float, high: float, count: int = 6, integer: bool = False) -> list[float]:
    """Round tick values covering [low, high]; whole numbers only with ``integer``."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + (1 if integer else abs(low) * 0.1 or 1)
    raw = (high - low) / max(1, count - 1)
    step = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if step * mult >= raw:
            step *= mult
            break
    if integer:
        step = max(1, round(step))
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    ticks = [m * 10 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
             for m in (1, 2, 5)]
    return [t for t in ticks if low <= t <= high] or [low, high]


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


class _Axes:
    def __init__(self, xs: list[float], ys: list[float], log_x: bool = False, integer_x: bool = False,
                 pad: float = 0.06):
        self.log_x = log_x
        tx = [math.log10(x) for x in xs] if log_x else list(xs)
        self.x0, self.x1 = self._padded(min(tx), max(tx), pad)
        self.y0, self.y1 = self._padded(min(ys), max(ys), pad)
        if log_x:
            self.xticks = log_ticks(10 ** self.x0, 10 ** self.x1)
        else:
            self.xticks = nice_ticks(self.x0, self.x1, integer=integer_x)
            if integer_x:
                self.xticks = [t for t in self.xticks if self.x0 <= t <= self.x1] or [round(self.x0)]
        self.yticks = [t for t in nice_ticks(self.y0, self.y1) if self.y0 <= t <= self.y1]

    @staticmethod
    def _padded(low: float, high: float, pad: float) -> tuple[float, float]:
        span = high - low or abs(high) * 0.1 or 1.0
        return low - pad * span, high + pad * span

    def px(self, x: float) -> float:
        v = math.log10(x) if self.log_x else x
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return TOP + (self.y1 - y) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def frame(self, xlabel: str, ylabel: str) -> list[str]:
        out = [f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
               'class="plot"/>']
        for t in self.xticks:
            x = self.px(t)
            out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" class="grid"/>')
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" class="tick" text-anchor="middle">'
                       f'{_fmt(t)}</text>')
        for t in self.yticks:
            y = self.py(t)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_fmt(t)}</text>')
        out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 12}" class="axis" text-anchor="middle">'
                   f'{escape(xlabel)}</text>')
        out.append(f'<text transform="translate(16 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" class="axis" '
                   f'text-anchor="middle">{escape(ylabel)}</text>')
        return out


def _svg(body: list[str], label: str, height: int = HEIGHT) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def scatter(points: list[dict], xlabel: str, ylabel: str, log_x: bool = False, front: list[dict] | None = None,
            title: str = "") -> str:
    """Points ``{x, y, label, href, highlight}``, labels placed in list order (the priority); ``front`` joined."""
    points = [p for p in points if math.isfinite(p["x"]) and math.isfinite(p["y"]) and (p["x"] > 0 or not log_x)]
    if not points:
        return '<p class="empty">no point to draw</p>'
    ax = _Axes([p["x"] for p in points], [p["y"] for p in points], log_x=log_x)
    body = ax.frame(xlabel, ylabel)
    if front:
        path = " ".join(f"{ax.px(p['x']):.1f},{ax.py(p['y']):.1f}" for p in front)
        body.append(f'<polyline points="{path}" class="front"/>')
    xy = [(ax.px(p["x"]), ax.py(p["y"])) for p in points]
    sizes = [(CHAR_W * len(p["label"]), FONT + 2) for p in points]
    spots = place_labels(xy, sizes, (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM), marker=5)
    for p, (x, y), (width, _), spot in zip(points, xy, sizes, spots, strict=True):
        tip = f"{p['label']}: {ylabel} {p['y']:.4f}, {xlabel} {p['x']:.3g}"
        title = f"<title>{escape(tip)}</title>"
        if p.get("highlight"):  # the baseline: a hollow diamond, drawn where a circle would hide it
            mark = (f'<path d="M{x:.1f} {y - 7:.1f} L{x + 7:.1f} {y:.1f} L{x:.1f} {y + 7:.1f} L{x - 7:.1f} {y:.1f} Z" '
                    f'class="point highlight">{title}</path>')
        else:
            mark = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" class="point">{title}</circle>'
        body.append(f'<a href="{escape(p["href"])}" data-label="{escape(tip)}">{mark}</a>')
        if spot is not None:
            # Drawn exactly as wide as its box: a wider system font must not run into a point.
            body.append(f'<text x="{spot[0]:.1f}" y="{spot[1] + FONT:.1f}" class="label" '
                        f'textLength="{width:.1f}" lengthAdjust="spacingAndGlyphs">{escape(p["label"])}</text>')
    shown = sum(s is not None for s in spots)
    note = f"{shown} of {len(points)} labelled; hover a point for its name"
    return _svg(body, title or f"{ylabel} against {xlabel}") + f'<p class="note">{note}</p>'


def lines(series: list[dict], xlabel: str, ylabel: str, integer_x: bool = True, title: str = "") -> str:
    """Series ``{name, xs, ys, dashed, markers}`` on one chart with a legend."""
    xs = [x for s in series for x in s["xs"]]
    ys = [y for s in series for y in s["ys"] if y is not None and math.isfinite(y)]
    if not xs or not ys:
        return '<p class="empty">nothing to draw</p>'
    ax = _Axes(xs, ys, integer_x=integer_x)
    body = ax.frame(xlabel, ylabel)
    for i, s in enumerate(series):
        colour = s.get("colour") or COLOURS[i % len(COLOURS)]
        values = [(x, y) for x, y in zip(s["xs"], s["ys"], strict=True) if y is not None and math.isfinite(y)]
        pts = [(ax.px(x), ax.py(y)) for x, y in values]
        dash = ' stroke-dasharray="5 4"' if s.get("dashed") else ""
        if s.get("line", True) and len(pts) > 1:
            body.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}" fill="none" '
                        f'stroke="{colour}" stroke-width="1.8"{dash}/>')
        for (x, y), (vx, vy) in zip(pts, values, strict=True):
            tip = f"{s['name']}: {xlabel} {_fmt(vx)}, {ylabel} {vy:.4g}"
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" data-label="{escape(tip)}">'
                        f'<title>{escape(tip)}</title></circle>')
        # The legend, under the chart: it covers no line.
        lx, ly = LEFT + (i % 3) * 230, HEIGHT + 12 + 18 * (i // 3)
        body.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 20}" y2="{ly - 4}" stroke="{colour}" '
                    f'stroke-width="2"{dash}/>')
        body.append(f'<text x="{lx + 25}" y="{ly}" class="legend">{escape(s["name"][:34])}</text>')
    return _svg(body, title or f"{ylabel} against {xlabel}", HEIGHT + 20 + 18 * ((len(series) - 1) // 3 + 1))
