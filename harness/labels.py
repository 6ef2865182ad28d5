"""Which points of a chart to label first, and where: for the PNG plots and the report's SVG charts alike.

The priority (:func:`label_order`): the baseline, then the Pareto front (:func:`pareto_front`),
then the rest, best first. The placement (:func:`place_labels`), greedy in that order: each
label tries eight spots around its point and takes the first that overlaps no label placed
before it, no point marker and stays inside the plot. A label with no free spot is left out
(the report shows it on hover; a PNG counts it in its caption).
"""

from __future__ import annotations

import math

import pandas as pd

BASELINE = "deepseek_baseline"  # the reference every chart draws apart and labels first

# Spots tried around a point, as multiples of (label width, label height) offsets from it:
# right, left, above, below, then the four diagonals.
_SPOTS = [(1, 0), (-1, 0), (0, -1), (0, 1), (1, -1), (-1, -1), (1, 1), (-1, 1)]

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, y growing downwards


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(points: list[tuple[float, float]], sizes: list[tuple[float, float]],
                 bounds: Box, marker: float = 4.0, gap: float = 3.0, obstacles: tuple[Box, ...] = (),
                 ) -> list[tuple[float, float] | None]:
    """Top-left corner of each label's box, or None where none fits, in the order given (the priority).

    ``points`` ``[(x, y)]`` and label ``sizes`` ``[(width, height)]`` are in pixels; ``marker``
    is the half-size of a point's marker, ``gap`` the space between marker and label;
    ``obstacles`` are other boxes no label may cover (a legend).
    """
    taken: list[Box] = [(x - marker, y - marker, x + marker, y + marker) for x, y in points] + list(obstacles)
    out: list[tuple[float, float] | None] = []
    for (x, y), (w, h) in zip(points, sizes, strict=True):
        spot = None
        for sx, sy in _SPOTS:
            left = x + gap + marker if sx > 0 else x - gap - marker - w if sx < 0 else x - w / 2
            top = y - h / 2 if sy == 0 else y - gap - marker - h if sy < 0 else y + gap + marker
            box = (left, top, left + w, top + h)
            inside = box[0] >= bounds[0] and box[1] >= bounds[1] and box[2] <= bounds[2] and box[3] <= bounds[3]
            if inside and not any(_overlaps(box, other) for other in taken):
                spot = (left, top)
                taken.append(box)
                break
        out.append(spot)
    return out


def pareto_front(table: pd.DataFrame, x: str = "runtime_ms", y: str = "gpu_balancedness") -> pd.DataFrame:
    """Rows not dominated by another (lower ``x`` and higher ``y`` are better), sorted by ``x``."""
    pts = table.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    best = -math.inf
    keep = []
    for idx, value in pts[y].items():
        if value > best:
            keep.append(idx)
            best = value
    return pts.loc[keep]


def label_order(pts: pd.DataFrame, front: pd.DataFrame, y: str) -> list:
    """Row labels of ``pts``: the baseline first, then the front, then the rest by ``y``, best first."""
    rest = pts.drop(index=front.index).sort_values(y, ascending=False)
    order = list(front.index) + list(rest.index)
    base = [i for i in order if pts.loc[i, "candidate"] == BASELINE]
    return base + [i for i in order if i not in base]
