"""Leaderboard plots (matplotlib, PNG, for papers): Pareto front, gap heatmap, ranking bars, progress, replay.

Point labels are placed by :func:`harness.labels.place_labels` (none overlaps another label
or a point; one with no free spot is left out and counted in the caption); the baseline is
drawn apart (a larger hollow diamond on top) so that no candidate hides it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from harness.labels import BASELINE, label_order, pareto_front, place_labels  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120)  # figures are made with layout="constrained": no tight_layout warnings
    plt.close(fig)
    return path


def _label_points(ax: plt.Axes, xs: list[float], ys: list[float], names: list[str], fontsize: float = 7) -> int:
    """Label each point where its label overlaps nothing, in the order given; the number left out."""
    fig = ax.figure
    fig.canvas.draw()  # the layout, so that positions and text sizes are final
    renderer = fig.canvas.get_renderer()
    height = fig.bbox.height
    shown = [ax.transData.transform((x, y)) for x, y in zip(xs, ys, strict=True)]
    points = [(float(px), float(height - py)) for px, py in shown]
    sizes = []
    for name in names:
        probe = ax.text(0, 0, name, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width, extent.height))
        probe.remove()
    box = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    avoid = []
    if legend is not None:
        e = legend.get_window_extent(renderer)
        avoid.append((e.x0, height - e.y1, e.x1, height - e.y0))
    spots = place_labels(points, sizes, (box.x0, height - box.y1, box.x1, height - box.y0), obstacles=tuple(avoid))
    inverse = ax.transData.inverted()
    for name, spot, (_, h) in zip(names, spots, sizes, strict=True):
        if spot is not None:
            x, y = inverse.transform((spot[0], height - spot[1] - h))  # the text's bottom-left corner
            ax.text(x, y, name, fontsize=fontsize, ha="left", va="bottom")
    return sum(s is None for s in spots)


def _omitted_note(ax: plt.Axes, omitted: int) -> None:
    if omitted:
        ax.text(1.0, -0.16, f"{omitted} label(s) left out where they would overlap (the HTML report shows all)",
                transform=ax.transAxes, ha="right", va="top", fontsize=6, color="0.4")


def plot_pareto(table: pd.DataFrame, path: Path) -> Path:
    return _save(pareto_figure(table), path)


def pareto_figure(table: pd.DataFrame) -> plt.Figure:
    """Balance against runtime, the front joined, labels placed (:func:`_label_points`)."""
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    pts = table.dropna(subset=["runtime_ms", "gpu_balancedness"])
    others = pts[pts["candidate"] != BASELINE]
    ax.scatter(others["runtime_ms"], others["gpu_balancedness"], color="tab:blue", s=22, zorder=3)
    base = pts[pts["candidate"] == BASELINE]
    ax.scatter(base["runtime_ms"], base["gpu_balancedness"], marker="D", s=70, facecolors="none",
               edgecolors="black", linewidths=1.5, zorder=4, label="baseline")
    front = pareto_front(pts)
    ax.step(front["runtime_ms"], front["gpu_balancedness"], where="post", color="tab:red", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("rebalance runtime, median over cases (ms, log scale)")
    ax.set_ylabel("GPU balancedness (mean over cases)")
    ax.set_title("Balance against runtime")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.margins(x=0.25, y=0.12)
    order = label_order(pts, front, "gpu_balancedness")
    omitted = _label_points(ax, [pts.loc[i, "runtime_ms"] for i in order],
                            [pts.loc[i, "gpu_balancedness"] for i in order], [pts.loc[i, "candidate"] for i in order])
    _omitted_note(ax, omitted)
    return fig


def plot_gap_heatmap(per_case: pd.DataFrame, table: pd.DataFrame, path: Path) -> Path:
    gap = per_case.assign(gap=per_case["gap_to_bound"].where(per_case["ok"], np.nan)).pivot_table(
        index="candidate", columns="case", values="gap", aggfunc="mean", dropna=False
    )
    gap = gap.reindex([c for c in table["candidate"] if c in gap.index])
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * gap.shape[1] + 3), max(2.5, 0.45 * gap.shape[0] + 1.8)),
                           layout="constrained")
    image = ax.imshow(gap.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=np.nanmin(gap.to_numpy(
        dtype=float)) if np.isfinite(gap.to_numpy(dtype=float)).any() else 0, vmax=1.0)
    ax.set_xticks(range(gap.shape[1]), gap.columns, rotation=75, ha="right", fontsize=6)
    ax.set_yticks(range(gap.shape[0]), gap.index, fontsize=7)
    ax.set_title("GPU balancedness / bound per case (blank = failed)")
    fig.colorbar(image, ax=ax, label="gap to bound")
    return _save(fig, path)


def plot_ranking(table: pd.DataFrame, path: Path, column: str = "gpu_balancedness") -> Path:
    ordered = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.4 * len(ordered) + 1.2)), layout="constrained")
    colors = ["tab:red" if f else "tab:blue" for f in ordered["failures"]]
    ax.barh(ordered["candidate"], ordered[column], color=colors)
    low = float(ordered[column].min()) if len(ordered) else 0.0
    ax.set_xlim(max(0.0, low - 0.05), 1.0)
    for y, value in enumerate(ordered[column]):
        ax.text(value, y, f" {value:.4f}", va="center", fontsize=7)
    ax.set_xlabel(f"{column} (mean over cases; red = has failures)")
    ax.set_title("Ranking")
    return _save(fig, path)


def plot_progress(history: list[dict], path: Path) -> Path:
    return _save(progress_figure(history), path)


def progress_figure(history: list[dict]) -> plt.Figure:
    """Best and median archive fitness per generation, one colour per island."""
    df = pd.DataFrame(history)
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for island, rows in df.groupby("island"):
        line = ax.plot(rows["generation"], rows["best"], marker="o", label=f"island {island} best")
        ax.plot(rows["generation"], rows["median"], linestyle="--", color=line[0].get_color(),
                label=f"island {island} median")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole
    ax.set_xlabel("generation")
    ax.set_ylabel("GPU balancedness (archive)")
    ax.set_title("Evolution progress")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def plot_timeline(records: pd.DataFrame, path: Path) -> Path:
    """GPU balancedness per window and expert copies moved per rebalance, one line per candidate."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, layout="constrained")
    for name, rows in records.groupby("candidate", sort=False):
        line = top.plot(rows["window"], rows["gpu_balancedness"], marker=".", label=name)
        moved = rows[rows["rebalanced"]]
        bottom.plot(moved["window"], moved["copies_transferred"], marker="o", color=line[0].get_color(), label=name)
    top.set_ylabel("GPU balancedness")
    top.set_title("Replay: balance per window and migrations per rebalance")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=7)
    bottom.set_ylabel("expert copies moved")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))  # windows are whole
    bottom.set_xlabel("window")
    bottom.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_migration_tradeoff(totals: pd.DataFrame, path: Path) -> Path:
    """GPU balancedness against the share of expert copies moved per rebalance, one point per candidate.

    ``totals`` has ``candidate``, ``copies_share_per_rebalance`` and ``mean_gpu_balancedness``;
    knob variants (``NAME@KNOB=v``) of one candidate are joined by a line.
    """
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    family = totals["candidate"].str.replace(r"@.*$", "", regex=True)
    markers = iter("osv^<>Xph*" * 4)
    xs, ys, tags = [], [], []
    for name, rows in totals.groupby(family, sort=False):
        rows = rows.sort_values("copies_share_per_rebalance")
        is_base = name == BASELINE
        style = dict(marker="D", markersize=9, markerfacecolor="none", markeredgewidth=1.5, color="black",
                     zorder=4) if is_base else dict(marker=next(markers), zorder=3)
        ax.plot(rows["copies_share_per_rebalance"] * 100, rows["mean_gpu_balancedness"],
                linestyle="-" if len(rows) > 1 else "none", label=name, **style)
        for _, r in rows.iterrows():
            tag = r["candidate"][len(name):].partition("=")[2]
            if tag or len(rows) > 1:  # a knob variant says its value; a lone point is in the legend
                xs.append(r["copies_share_per_rebalance"] * 100)
                ys.append(r["mean_gpu_balancedness"])
                tags.append(tag or "default")
    ax.set_xlabel("expert copies moved per rebalance (% of slots)")
    ax.set_ylabel("mean GPU balancedness")
    ax.set_title("Migration trade-off: balance against weight transfers")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.margins(x=0.15, y=0.12)
    _omitted_note(ax, _label_points(ax, xs, ys, tags, fontsize=6))
    return _save(fig, path)


def write_plots(per_case: pd.DataFrame, table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write ``pareto.png``, ``gap_heatmap.png`` and ``ranking.png`` into ``out_dir``.

    Only ranked candidates (a result on every case of the set) are drawn: the others' means are over other cases.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "rank" in table:
        table = table[table["rank"].notna()]
        per_case = per_case[per_case["candidate_id"].isin(table["candidate_id"])]
    return [
        plot_pareto(table, out / "pareto.png"),
        plot_gap_heatmap(per_case, table, out / "gap_heatmap.png"),
        plot_ranking(table, out / "ranking.png"),
    ]
