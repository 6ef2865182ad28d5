"""What the report shows, read from the store (and an Optuna storage) into plain frames and dicts.

Nothing here renders: :mod:`.pages` turns these into HTML. Boards are one per (suite,
deployment) with a result in the store; each holds the per-case rows and the leaderboard
built from them by :func:`harness.leaderboard.leaderboard` (equal case sets: only
candidates with every case are ranked).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import pandas as pd

from evaluator.deployment import DeploymentError
from evaluator.suites import SUITES, get_suite
from harness.leaderboard import case_results, leaderboard
from harness.store import Store

EVALUATED = ("accepted", "not better", "failed")  # an evolve event that is one evaluated child


@dataclass
class Board:
    """One leaderboard: a suite on one deployment (None: its presets' own)."""

    suite: str
    deployment: str | None
    per_case: pd.DataFrame  # one row per (candidate, case): every figure, ok, runtime_ms, speedup
    table: pd.DataFrame  # harness.leaderboard.leaderboard: ranked rows first, rank NA for incomplete ones

    @property
    def key(self) -> str:
        return self.suite + (f"[{self.deployment}]" if self.deployment else "")

    @property
    def ranked(self) -> pd.DataFrame:
        return self.table[self.table["rank"].notna()]

    @property
    def incomplete(self) -> pd.DataFrame:
        return self.table[self.table["rank"].isna()]


@dataclass
class EvolveRun:
    """One evolve run's events, as stored."""

    name: str
    events: pd.DataFrame
    progress: list[dict] = field(default_factory=list)  # per generation: evaluations, best, median
    archive: pd.DataFrame = field(default_factory=pd.DataFrame)  # the last generation's archived members
    best_id: str | None = None


def boards(store: Store, suite: str | None, deployment: str | None) -> list[Board]:
    """Every (suite, deployment) board with a result: ``suite`` alone if given, and on ``deployment`` if given.

    UnknownSuiteError for an unknown ``suite``; DeploymentError when ``deployment`` fits none
    of the suites' cases (a suite it does not fit is left out when no suite is named).
    """
    suites = [suite] if suite else list(SUITES)
    out, fitted = [], 0
    for name in suites:
        cases = get_suite(name)
        for spot in ([None] if deployment is None else [deployment]):
            try:
                chosen = [c.with_deployment(spot) for c in cases] if spot else cases
            except DeploymentError:
                if suite:
                    raise
                continue
            fitted += 1
            keys = [c.key for c in chosen]
            per_case = case_results(store, keys)
            if per_case.empty:
                continue
            out.append(Board(name, spot, per_case, leaderboard(per_case, case_keys=keys)))
    if deployment and not fitted:
        raise DeploymentError(f"deployment {deployment} fits no suite's cases")
    # Boards that rank someone first (the page opens on the first), the others after, each in suite order.
    return sorted(out, key=lambda b: b.ranked.empty)


def evolve_runs(store: Store) -> list[EvolveRun]:
    """Every evolve run in the store, with its progress over evaluations and its last archive."""
    events = store.evolution_events_frame()
    runs = []
    for name, rows in events.groupby("evolution", sort=True):
        run = EvolveRun(name, rows.reset_index(drop=True))
        evaluated = 0
        for generation, part in rows.groupby("generation", sort=True):
            evaluated += int(part["status"].isin(EVALUATED).sum())
            fits = part.loc[part["status"] == "archived", "fitness"].dropna().tolist()
            if fits:
                run.progress.append({"generation": int(generation), "evaluations": evaluated,
                                     "best": max(fits), "median": statistics.median(fits)})
        archived = rows[rows["status"] == "archived"]
        if not archived.empty:
            last = archived[archived["generation"] == archived["generation"].max()]
            run.archive = last.assign(candidate=[_name(store, c) for c in last["candidate_id"]])
            best = run.archive.sort_values(["fitness", "candidate_id"], ascending=False).iloc[0]
            run.best_id = best["candidate_id"]
        runs.append(run)
    return runs


def _name(store: Store, candidate_id: str) -> str:
    try:
        return store.get_candidate(candidate_id).name
    except KeyError:
        return candidate_id


def lineage(store: Store, candidate_id: str, depth: int = 40) -> dict:
    """``{id, name, origin, parents: [...]}`` back through every parent, ``depth`` generations at most."""
    seen: set[str] = set()

    def node(cid: str, left: int) -> dict:
        try:
            cand = store.get_candidate(cid)
        except KeyError:  # a parent the store never saw (a file evaluated elsewhere)
            return {"id": cid, "name": cid, "origin": "not in the store", "parents": [], "missing": True}
        out = {"id": cid, "name": cand.name, "origin": cand.origin, "parents": []}
        if cid in seen or left == 0:
            out["cut"] = bool(cand.parent_ids)
            return out
        seen.add(cid)
        out["parents"] = [node(p, left - 1) for p in cand.parent_ids]
        return out

    return node(candidate_id, depth)


def tune_studies(storage: str | None) -> list[dict]:
    """``{name, directions, trials: DataFrame}`` of every study in an Optuna storage ([] without one)."""
    if not storage:
        return []
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = []
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        frame = study.trials_dataframe(attrs=("number", "state", "values", "params", "user_attrs"))
        if "value" in frame and "values_0" not in frame:
            frame = frame.rename(columns={"value": "values_0"})
        out.append({"name": summary.study_name, "directions": [d.name.lower() for d in study.directions],
                    "trials": frame})
    return out
