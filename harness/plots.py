"""Leaderboard plots (matplotlib, PNG): Pareto front, gap heatmap, ranking bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pareto_front(table: pd.DataFrame, x: str = "runtime_ms", y: str = "gpu_balancedness") -> pd.DataFrame:
    """Rows not dominated by another (lower ``x`` and higher ``y`` are better), sorted by ``x``."""
    pts = table.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    best = -np.inf
    keep = []
    for idx, value in pts[y].items():
        if value > best:
            keep.append(idx)
            best = value
    return pts.loc[keep]


def plot_pareto(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = table.dropna(subset=["runtime_ms", "gpu_balancedness"])
    ax.scatter(pts["runtime_ms"], pts["gpu_balancedness"], color="tab:blue", zorder=3)
    for _, row in pts.iterrows():
        ax.annotate(row["candidate"], (row["runtime_ms"], row["gpu_balancedness"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    front = pareto_front(pts)
    ax.step(front["runtime_ms"], front["gpu_balancedness"], where="post", color="tab:red", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("rebalance runtime, median over cases (ms, log scale)")
    ax.set_ylabel("GPU balancedness (mean over cases)")
    ax.set_title("Balance against runtime")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    ax.margins(x=0.15, y=0.1)
    return _save(fig, path)


def plot_gap_heatmap(per_case: pd.DataFrame, table: pd.DataFrame, path: Path) -> Path:
    gap = per_case.assign(gap=per_case["gap_to_bound"].where(per_case["ok"], np.nan)).pivot_table(
        index="candidate", columns="case", values="gap", aggfunc="mean", dropna=False
    )
    gap = gap.reindex([c for c in table["candidate"] if c in gap.index])
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * gap.shape[1] + 3), max(2.5, 0.45 * gap.shape[0] + 1.8)))
    image = ax.imshow(gap.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=np.nanmin(gap.to_numpy(
        dtype=float)) if np.isfinite(gap.to_numpy(dtype=float)).any() else 0, vmax=1.0)
    ax.set_xticks(range(gap.shape[1]), gap.columns, rotation=75, ha="right", fontsize=6)
    ax.set_yticks(range(gap.shape[0]), gap.index, fontsize=7)
    ax.set_title("GPU balancedness / bound per case (blank = failed)")
    fig.colorbar(image, ax=ax, label="gap to bound")
    return _save(fig, path)


def plot_ranking(table: pd.DataFrame, path: Path, column: str = "gpu_balancedness") -> Path:
    ordered = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.4 * len(ordered) + 1.2)))
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
    """Best and median archive fitness per generation, one colour per island."""
    df = pd.DataFrame(history)
    fig, ax = plt.subplots(figsize=(7, 4))
    for island, rows in df.groupby("island"):
        line = ax.plot(rows["generation"], rows["best"], marker="o", label=f"island {island} best")
        ax.plot(rows["generation"], rows["median"], linestyle="--", color=line[0].get_color(),
                label=f"island {island} median")
    ax.set_xlabel("generation")
    ax.set_ylabel("GPU balancedness (archive)")
    ax.set_title("Evolution progress")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_timeline(records: pd.DataFrame, path: Path) -> Path:
    """GPU balancedness per window and expert copies moved per rebalance, one line per candidate."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    for name, rows in records.groupby("candidate", sort=False):
        line = top.plot(rows["window"], rows["gpu_balancedness"], marker=".", label=name)
        moved = rows[rows["rebalanced"]]
        bottom.plot(moved["window"], moved["copies_transferred"], marker="o", color=line[0].get_color(), label=name)
    top.set_ylabel("GPU balancedness")
    top.set_title("Replay: balance per window and migrations per rebalance")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=7)
    bottom.set_ylabel("expert copies moved")
    bottom.set_xlabel("window")
    bottom.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_migration_tradeoff(totals: pd.DataFrame, path: Path) -> Path:
    """GPU balancedness against the share of expert copies moved per rebalance, one point per candidate.

    ``totals`` has ``candidate``, ``copies_share_per_rebalance`` and ``mean_gpu_balancedness``;
    knob variants (``NAME@KNOB=v``) of one candidate are joined by a line.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    family = totals["candidate"].str.replace(r"@.*$", "", regex=True)
    for name, rows in totals.groupby(family, sort=False):
        rows = rows.sort_values("copies_share_per_rebalance")
        ax.plot(rows["copies_share_per_rebalance"] * 100, rows["mean_gpu_balancedness"],
                marker="o", linestyle="-" if len(rows) > 1 else "none", label=name)
        for _, r in rows.iterrows():
            tag = r["candidate"][len(name):].partition("=")[2] or "default"
            ax.annotate(tag, (r["copies_share_per_rebalance"] * 100, r["mean_gpu_balancedness"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("expert copies moved per rebalance (% of slots)")
    ax.set_ylabel("mean GPU balancedness")
    ax.set_title("Migration trade-off: balance against weight transfers")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
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
