"""``eplb-harness report``: a static site of a store's results, opened from ``file://`` or published as is.

:func:`build_report` reads the store (:mod:`.collect`), renders every page (:mod:`.pages`,
charts in :mod:`.svg`) and copies the two shipped assets. Nothing is fetched from a network.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from harness.report import collect, pages
from harness.store import Store

ASSETS = Path(__file__).parent / "assets"


def build_report(store: Store, out: str | Path, suite: str | None = None, deployment: str | None = None,
                 storage: str | None = None, store_url: str = "") -> Path:
    """Write the site into ``out`` (replaced whole, never left half-written); its ``index.html``."""
    generated = f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from {store_url}"
    boards = collect.boards(store, suite, deployment)
    runs = collect.evolve_runs(store)
    replays = store.replays_frame()
    studies = collect.tune_studies(storage)
    scope = (f" on suite {suite}" if suite else "") + (f" on deployment {deployment}" if deployment else "")
    files: dict[str, str] = {"index.html": pages.index_page(boards, generated, store_url, scope),
                             "runs.html": pages.runs_page(runs, replays, studies, generated)}
    wanted: set[str] = set()
    for board in boards:
        wanted |= set(board.table["candidate_id"])
    trees = {}
    for run in runs:
        wanted |= set(run.events["candidate_id"].dropna())
        tree = collect.lineage(store, run.best_id) if run.best_id else None
        trees[run.name] = tree
        files[f"evolve/{pages.slug(run.name)}.html"] = pages.evolve_page(run, tree, generated)
    for tree in trees.values():
        stack = [tree] if tree else []
        while stack:
            node = stack.pop()
            if not node.get("missing"):
                wanted.add(node["id"])
            stack.extend(node["parents"])
    wanted |= set(replays["candidate_id"]) if not replays.empty else set()
    for study in studies:  # the trials' children, recorded by the tune command
        wanted |= set(study["trials"].get("user_attrs_candidate_id", pd.Series(dtype=str)).dropna())
    for run_id, rows in (replays.groupby("run_id") if not replays.empty else []):
        files[f"replays/{int(run_id)}.html"] = pages.replay_page(int(run_id), rows, generated)
    names: dict[str, str] = {}
    for cid in sorted(wanted):
        try:
            candidate = store.get_candidate(cid)
        except KeyError:
            continue
        names[cid] = candidate.name
        files[f"candidates/{cid}.html"] = pages.candidate_page(
            candidate, _parent(store, candidate), boards, store.evaluations_frame([cid]), generated)
    for study in studies:
        files[f"tune/{pages.slug(study['name'])}.html"] = pages.tune_page(study, storage or "", names, generated)
    return _write(Path(out), files)


def _parent(store: Store, candidate):
    """The candidate's first parent (its diff is shown against it), or None."""
    try:
        return store.get_candidate(candidate.parent_ids[0]) if candidate.parent_ids else None
    except KeyError:
        return None


def _write(out: Path, files: dict[str, str]) -> Path:
    """Every page and asset into a fresh folder beside ``out``, then swapped in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, text in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        shutil.copytree(ASSETS, staging / "assets")
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / "index.html"
