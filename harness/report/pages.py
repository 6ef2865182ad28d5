"""The report's HTML pages, from what :mod:`.collect` read. Plain strings, every value escaped.

Links are relative, so the folder works from ``file://`` and can be published as it is; the
only assets are ``assets/report.css`` and ``assets/report.js``, shipped with the package.
"""

from __future__ import annotations

import difflib
import math
import re
from html import escape

import pandas as pd

from harness.figures import FIGURES
from harness.labels import BASELINE, label_order, pareto_front
from harness.replay_summary import replay_totals
from harness.report import svg
from harness.report.collect import Board, EvolveRun

OWN_DEPLOYMENT = "each preset's own"


def slug(name: str) -> str:
    """A file name for ``name`` (a study's name may hold any character)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"
NAV = [("index.html", "Leaderboard, Pareto front, heatmap"), ("runs.html", "Evolve runs, replays, tune studies")]


def page(title: str, body: str, depth: int = 0, generated: str = "") -> str:
    up = "../" * depth
    nav = " ".join(f'<a href="{up}{href}">{escape(text)}</a>' for href, text in NAV)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · eplb-harness report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><link rel="stylesheet" href="{up}assets/report.css"></head>
<body><header><nav>{nav}</nav><span class="generated">{escape(generated)}</span></header>
<main><h1>{escape(title)}</h1>
{body}
</main><div id="tooltip" role="tooltip" hidden></div><script src="{up}assets/report.js"></script></body></html>
"""


def candidate_href(candidate_id: str, depth: int = 0) -> str:
    return f"{'../' * depth}candidates/{candidate_id}.html"


def _num(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text_cell(value) -> str:
    """A cell showing ``value`` as text; a missing one as a dash (sorted last)."""
    missing = value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or value == ""
    if missing:
        return '<td data-v="" class="na">–</td>'
    shown = escape(str(value))
    return f'<td data-v="{shown}">{shown}</td>'


def _cell(value, fmt: str = ".4f") -> str:
    """A numeric cell formatted with ``fmt`` (its exact value in ``data-v``, for sorting); text otherwise."""
    v = _num(value)
    if v is None:
        return _text_cell(value)
    return f'<td data-v="{v!r}" class="num">{format(v, fmt)}</td>'


def figure_columns(table: pd.DataFrame) -> list[str]:
    """Every declared figure the table has, then its per-family columns."""
    return [f for f in FIGURES if f in table] + [c for c in table.columns if str(c).startswith("gpu_bal:")]


def leaderboard_table(table: pd.DataFrame, columns: list[str], css: str, depth: int = 0) -> str:
    heads = ['<th data-sort="num" data-key="rank">rank</th>', '<th data-sort="text">candidate</th>',
             '<th data-sort="text">origin</th>']
    for c in columns:
        fig = FIGURES.get(c)
        better = "" if fig is None else f' data-better="{"high" if fig.higher_is_better else "low"}"'
        tip = escape(fig.description) if fig else f"GPU balancedness on {escape(c[8:])} cases"
        heads.append(f'<th data-sort="num"{better} title="{tip}">{escape(c)}</th>')
    heads += ['<th data-sort="num">failures</th>', '<th data-sort="text">coverage</th>',
              '<th data-sort="text">timed</th>']
    rows = []
    for r in table.to_dict("records"):
        origin = escape(str(r.get("origin") or ""))
        name = escape(str(r["candidate"]))
        cls = ' class="baseline"' if r["candidate"] == BASELINE else ""
        cells = [_cell(r.get("rank"), ".0f"),
                 f'<td data-v="{name}"><a href="{candidate_href(r["candidate_id"], depth)}">{name}</a></td>',
                 f'<td data-v="{origin}">{origin}</td>']
        cells += [_cell(r.get(c), FIGURES[c].fmt if c in FIGURES else ".4f") for c in columns]
        cells += [_cell(r.get("failures"), ".0f"), _cell(r.get("coverage")), _cell(r.get("timed"))]
        rows.append(f'<tr data-origin="{origin}"{cls}>{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table class="{css} sortable"><thead><tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def pareto_chart(table: pd.DataFrame, depth: int = 0) -> str:
    pts = table.dropna(subset=["speedup", "gpu_balancedness"])
    pts = pts[pts["speedup"] > 0]
    untimed = table[~table["candidate_id"].isin(pts["candidate_id"])]["candidate"].tolist()
    missing = (f'<p class="note">Not drawn, never timed on this board: {escape(", ".join(untimed))}.</p>'
               if untimed else "")
    if pts.empty:
        return '<p class="empty">no timed candidate on this board: the Pareto front needs runtimes</p>'
    # The front: no other candidate is at least as fast and at least as balanced (higher speed-up is better).
    front = pareto_front(pts.assign(slowdown=-pts["speedup"]), x="slowdown").index
    ranked = label_order(pts, pts.loc[front], "gpu_balancedness")
    points = [{"x": float(pts.loc[i, "speedup"]), "y": float(pts.loc[i, "gpu_balancedness"]),
               "label": str(pts.loc[i, "candidate"]), "href": candidate_href(pts.loc[i, "candidate_id"], depth),
               "highlight": pts.loc[i, "candidate"] == BASELINE} for i in ranked]
    line = [{"x": float(pts.loc[i, "speedup"]), "y": float(pts.loc[i, "gpu_balancedness"])} for i in front]
    return svg.scatter(points, "speed-up over the baseline (same run, log scale)", "GPU balancedness t→t+1",
                       log_x=True, front=sorted(line, key=lambda p: p["x"]),
                       title="Pareto front of balance against speed-up") + missing


def _colour(value: float, low: float) -> str:
    """A light-to-dark blue for ``low`` .. 1 (higher is better: darker)."""
    t = 0.0 if not math.isfinite(value) else min(1.0, max(0.0, (value - low) / max(1e-9, 1 - low)))
    r, g, b = (int(247 - t * (247 - 8)), int(251 - t * (251 - 69)), int(255 - t * (255 - 148)))
    return f"rgb({r},{g},{b})"


def heatmap(board: Board, depth: int = 0) -> str:
    ranked = board.ranked
    per_case = board.per_case[board.per_case["candidate_id"].isin(ranked["candidate_id"])]
    if per_case.empty:
        return '<p class="empty">no complete candidate</p>'
    cases = list(dict.fromkeys(per_case.sort_values(["family", "case"])["case"]))
    values = per_case.set_index(["candidate_id", "case"])
    ok = values["ok"]
    gap = values["gap_to_bound"]
    low = float(gap[ok].min()) if ok.any() else 0.0
    heads = "".join(f'<th class="case"><span>{escape(c)}</span></th>' for c in cases)
    rows = []
    for r in ranked.to_dict("records"):
        cells = []
        for c in cases:
            key = (r["candidate_id"], c)
            if key not in gap.index:
                cells.append('<td class="na">–</td>')
            elif not bool(ok.loc[key]):
                reason = values.loc[key, "failure_kind"]
                cells.append(f'<td class="failed" title="{escape(c)}: failed ({escape(str(reason))})">×</td>')
            else:
                v = float(gap.loc[key])
                dark = v > low + 0.6 * (1 - low)
                cells.append(f'<td style="background:{_colour(v, low)}" class="{"dark" if dark else ""}" '
                             f'title="{escape(str(r["candidate"]))} on {escape(c)}: gap to bound {v:.4f}">'
                             f'{v:.3f}</td>')
        name = escape(str(r["candidate"]))
        link = f'<a href="{candidate_href(r["candidate_id"], depth)}">{name}</a>'
        rows.append(f'<tr><th>{link}</th>{"".join(cells)}</tr>')
    return (f'<p class="note">GPU balancedness / the bound no valid placement can beat, per case (1.0 = at the '
            f'bound; × = failed). Darker is better.</p><div class="scroll"><table class="heatmap"><thead><tr><th>'
            f'</th>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def index_page(boards: list[Board], generated: str, store_url: str, scope: str = "") -> str:
    """The boards; ``scope`` says what was asked for (a suite, a deployment) when none has a result."""
    if not boards:
        body = f'<p class="empty">The store {escape(store_url)} has no evaluation{escape(scope)}.</p>'
        return page("Leaderboard", body, generated=generated)
    suites = list(dict.fromkeys(b.suite for b in boards))
    deployments = list(dict.fromkeys(b.deployment or "" for b in boards))
    origins = sorted({str(o) for b in boards for o in b.table["origin"].dropna()})
    select = ['<form class="filters" onsubmit="return false">',
              '<label>suite <select id="f-suite">' + "".join(f'<option>{escape(s)}</option>' for s in suites)
              + "</select></label>",
              '<label>deployment <select id="f-deployment">' + "".join(
                  f'<option value="{escape(d)}">{escape(d or OWN_DEPLOYMENT)}</option>' for d in deployments)
              + "</select></label>",
              '<label>origin <select id="f-origin"><option value="">every origin</option>'
              + "".join(f"<option>{escape(o)}</option>" for o in origins) + "</select></label></form>"]
    sections = []
    for board in boards:
        columns = figure_columns(board.table)
        cases = board.per_case["case_key"].nunique()
        incomplete = board.incomplete
        apart = "" if incomplete.empty else (
            f'<h3>Not ranked: results on only some of the {cases} cases</h3><p class="note">Their means are over '
            'other cases than the ranked ones; coverage says how many they have.</p>'
            + leaderboard_table(incomplete, columns, "incomplete"))
        sections.append(f"""<section class="board" data-suite="{escape(board.suite)}"
 data-deployment="{escape(board.deployment or '')}">
<h2 id="leaderboard-{escape(board.key)}">{escape(board.key)}: {len(board.ranked)} ranked candidates, {cases} cases</h2>
<p class="note">Click a column to sort by it (again: reverse). Ranked by GPU balancedness t→t+1; only candidates
with a result on every case are ranked.</p>
{leaderboard_table(board.ranked, columns, "leaderboard")}
{apart}
<h2 id="pareto-{escape(board.key)}">Pareto front: balance against speed-up</h2>
{pareto_chart(board.ranked)}
<h2 id="heatmap-{escape(board.key)}">Per-case heatmap</h2>
{heatmap(board)}
</section>""")
    body = "".join(select) + "".join(sections)
    return page("Leaderboard", body, generated=generated)


def _table(frame: pd.DataFrame, columns: list[str], fmts: dict | None = None, depth: int = 1) -> str:
    """Columns of ``frame``: declared figures and those in ``fmts`` as numbers, the rest as text."""
    fmts = fmts or {}
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = []
    for r in frame.to_dict("records"):
        cells = []
        for c in columns:
            value = r.get(c)
            if c == "candidate" and r.get("candidate_id"):
                cells.append(f'<td><a href="{candidate_href(r["candidate_id"], depth)}">{escape(str(value))}</a></td>')
            elif c in FIGURES or c in fmts:
                cells.append(_cell(value, fmts.get(c) or FIGURES[c].fmt))
            else:
                cells.append(_text_cell(value))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def diff_html(parent: str, child: str, parent_name: str, child_name: str) -> str:
    lines = difflib.unified_diff(parent.splitlines(), child.splitlines(), parent_name, child_name, lineterm="", n=3)
    out = []
    for line in lines:
        kind = ("file" if line.startswith(("---", "+++")) else "hunk" if line.startswith("@@")
                else "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx")
        out.append(f'<span class="{kind}">{escape(line)}</span>')
    return '<pre class="diff">' + ("".join(out) or "(no change)") + "</pre>"  # each line a block span


def candidate_page(candidate, parent, boards: list[Board], evaluations: pd.DataFrame, generated: str) -> str:
    parts = [f'<dl class="meta"><dt>id</dt><dd><code>{escape(candidate.id)}</code></dd>'
             f'<dt>origin</dt><dd>{escape(candidate.origin or "")}</dd>'
             f'<dt>description</dt><dd>{escape(candidate.description or "")}</dd>']
    if candidate.parent_ids:
        links = ", ".join(f'<a href="{p}.html"><code>{escape(p)}</code></a>' for p in candidate.parent_ids)
        parts.append(f"<dt>parents</dt><dd>{links}</dd>")
    parts.append("</dl>")
    for board in boards:
        mine = board.table[board.table["candidate_id"] == candidate.id]
        if mine.empty:
            continue
        row = mine.iloc[0]
        rank = "not ranked (incomplete)" if pd.isna(row["rank"]) else f"rank {int(row['rank'])}"
        summary = [f for f in FIGURES if FIGURES[f].summary and f in mine]
        families = [c for c in mine.columns if str(c).startswith("gpu_bal:")]
        cases = board.per_case[board.per_case["candidate_id"] == candidate.id].sort_values(["family", "case"])
        parts.append(f'<h2>{escape(board.key)}: {rank}, coverage {escape(str(row["coverage"]))}</h2>')
        parts.append(_table(mine, summary + ["failures", "timed"]))
        if families:
            parts.append("<h3>Per workload family (GPU balancedness t→t+1)</h3>")
            named = [c[8:] for c in families]
            parts.append(_table(mine.rename(columns=dict(zip(families, named, strict=True))), named,
                                dict.fromkeys(named, ".4f")))
        parts.append("<h3>Per case</h3>")
        parts.append(_table(cases, ["case", "family", "preset", "gpu_balancedness", "oracle_gpu_balancedness",
                                    "gap_to_bound", "group_node_spread", "runtime_ms", "speedup", "failure_kind",
                                    "reason"]))
    failed = evaluations[evaluations["failure_kind"].notna()] if not evaluations.empty else evaluations
    parts.append("<h2>Failures</h2>")
    parts.append(_table(failed, ["case", "failure_kind", "reason"]) if not failed.empty
                 else '<p class="note">none recorded</p>')
    if parent is not None:
        parts.append(f'<h2>Diff against its parent <a href="{parent.id}.html">{escape(parent.name)}</a></h2>')
        parts.append(diff_html(parent.source, candidate.source, parent.name, candidate.name))
    parts.append('<h2>Source</h2><pre class="source"><code>' + escape(candidate.source) + "</code></pre>")
    return page(candidate.name, "".join(parts), depth=1, generated=generated)


def _tree(node: dict) -> str:
    link = f'<a href="{candidate_href(node["id"], 1)}">{escape(node["name"])}</a>'
    tag = f' <span class="origin">{escape(node["origin"] or "")}</span>'
    more = ' <span class="note">(seen above)</span>' if node.get("cut") else ""
    kids = "".join(_tree(p) for p in node["parents"])
    return f"<li>{link}{tag}{more}" + (f"<ul>{kids}</ul>" if kids else "") + "</li>"


def evolve_page(run: EvolveRun, tree: dict | None, generated: str) -> str:
    parts = []
    if run.progress:
        xs = [p["evaluations"] for p in run.progress]
        parts.append("<h2>Fitness over evaluations</h2>")
        parts.append(svg.lines([{"name": "best in the archives", "xs": xs, "ys": [p["best"] for p in run.progress]},
                                {"name": "median of the archives", "xs": xs,
                                 "ys": [p["median"] for p in run.progress], "dashed": True}],
                               "children evaluated", "fitness", title="best and median fitness"))
    if not run.archive.empty:
        cells = run.archive.assign(cell=run.archive["reason"].str.removeprefix("cell "))
        parts.append(f"<h2>The archives' cells (generation {int(cells['generation'].iloc[0])})</h2>")
        parts.append(_table(cells.sort_values(["island", "fitness"], ascending=[True, False]),
                            ["island", "cell", "candidate", "fitness"], {"fitness": ".4f"}))
    if tree is not None:
        parts.append('<h2>Lineage of the best</h2><p class="note">Each candidate with its parents beneath; a '
                     'crossover child has two.</p><ul class="tree">' + _tree(tree) + "</ul>")
    counts = run.events.groupby(["operator", "status"]).size().rename("events").reset_index()
    parts.append("<h2>Proposals by operator and outcome</h2>")
    parts.append(_table(counts, ["operator", "status", "events"]))
    return page(f"Evolve run {run.name}", "".join(parts), depth=1, generated=generated)


def replay_page(run_id: int, rows: pd.DataFrame, generated: str) -> str:
    first = rows.iloc[0]
    policy = ", ".join(f"{k}={v}" for k, v in sorted(first["policy"].items()))
    records = pd.concat([pd.DataFrame(r).assign(candidate=c, candidate_id=cid)
                         for r, c, cid in zip(rows["records"], rows["candidate"], rows["candidate_id"], strict=True)],
                        ignore_index=True)
    balance = [{"name": name, "xs": part["window"].tolist(), "ys": part["gpu_balancedness"].tolist()}
               for name, part in records.groupby("candidate", sort=False)]
    moved = [{"name": name, "xs": part.loc[part["rebalanced"], "window"].tolist(),
              "ys": part.loc[part["rebalanced"], "copies_transferred"].astype(float).tolist()}
             for name, part in records.groupby("candidate", sort=False)]
    totals = replay_totals(records).merge(records[["candidate", "candidate_id"]].drop_duplicates(), on="candidate")
    parts = [f'<p>Case <code>{escape(str(first["case"]))}</code>; policy {escape(policy)}.</p>',
             "<h2>GPU balancedness per window</h2>",
             svg.lines(balance, "window", "GPU balancedness", title="balance per window"),
             "<h2>Expert copies moved per rebalance</h2>",
             svg.lines(moved, "window", "copies moved", title="copies moved per rebalance"),
             "<h2>Totals</h2>", _table(totals, [c for c in totals.columns if c != "candidate_id"],
                                       {"mean_gpu_balancedness": ".4f", "gib_moved": ".2f",
                                        "copies_share_per_rebalance": ".4f"})]
    return page(f"Replay {run_id}", "".join(parts), depth=1, generated=generated)


def tune_page(study: dict, storage: str, names: dict[str, str], generated: str) -> str:
    """A study's trials; ``names``: the store's candidates by id (a trial's child links to its page)."""
    trials = study["trials"].copy()
    values = {f"values_{i}": f"value {i} ({d})" for i, d in enumerate(study["directions"])}
    trials = trials.rename(columns=values)
    columns = [c for c in trials.columns if c in ("number", "state") or c in values.values() or c.startswith("params_")]
    if "user_attrs_candidate_id" in trials:
        ids = trials["user_attrs_candidate_id"]
        trials["candidate"] = [names.get(c, c) for c in ids]
        trials["candidate_id"] = ids.where(ids.isin(list(names)))
        columns.append("candidate")
    if "user_attrs_failure" in trials:
        trials["failure"] = trials["user_attrs_failure"]
        columns.append("failure")
    parts = [f'<p>Directions: {escape(", ".join(study["directions"]))}; {len(trials)} trials. A live view of the '
             f'same storage: <code>optuna-dashboard {escape(storage)}</code>.</p>',
             _table(trials, columns, dict.fromkeys(values.values(), ".4f"))]
    return page(f"Tune study {study['name']}", "".join(parts), depth=1, generated=generated)


def runs_page(runs: list[EvolveRun], replays: pd.DataFrame, studies: list[dict], generated: str) -> str:
    parts = ["<h2>Evolve runs</h2>"]
    parts.append("<ul>" + "".join(
        f'<li><a href="evolve/{slug(r.name)}.html">{escape(r.name)}</a>: {len(r.progress)} generations, '
        f'best fitness {max((p["best"] for p in r.progress), default=float("nan")):.4f}</li>' for r in runs)
        + "</ul>" if runs else '<p class="empty">none in the store</p>')
    parts.append("<h2>Replays</h2>")
    if replays.empty:
        parts.append('<p class="empty">none in the store (eplb-harness replay --db ... stores them)</p>')
    else:
        items = [f'<li><a href="replays/{int(run_id)}.html">replay {int(run_id)}</a>: '
                 f'{escape(str(g["case"].iloc[0]))}, {escape(", ".join(g["candidate"]))}</li>'
                 for run_id, g in replays.groupby("run_id")]
        parts.append("<ul>" + "".join(items) + "</ul>")
    parts.append("<h2>Tune studies</h2>")
    parts.append("<ul>" + "".join(f'<li><a href="tune/{slug(s["name"])}.html">{escape(s["name"])}</a>: '
                                  f'{len(s["trials"])} trials</li>' for s in studies) + "</ul>"
                 if studies else '<p class="empty">none (pass --storage, the tune command\'s Optuna storage)</p>')
    return page("Evolve runs, replays and tune studies", "".join(parts), generated=generated)
