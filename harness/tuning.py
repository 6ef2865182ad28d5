"""Optuna tuning of a candidate's knobs through the contained evaluator.

Each trial bakes the sampled knob values into a child candidate, evaluates it case by
case (reporting the running mean GPU balancedness so a pruner can stop a bad trial
early), and returns the objective. A trial whose child fails a case is marked FAIL
with the reason in its ``failure`` user attribute: never scored as zero. Several
``tune`` processes given the same ``--study`` and a shared ``--storage`` (PostgreSQL
for many machines) work on one study, as Optuna intends.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna

from evaluator.suites import Case
from harness import sandbox
from harness.candidate import Candidate
from harness.executors import Executor, LocalExecutor
from harness.knobs import Knob, bake, declared_knobs, find_literals
from harness.leaderboard import case_results, leaderboard
from harness.runner import RunConfig, evaluate
from harness.samplers import make_sampler
from harness.store import Store, retry_on_schema_race

OBJECTIVES = {
    # name -> (directions, needs timing)
    "balance": (["maximize"], False),
    "runtime": (["minimize"], True),
    "combined": (["maximize"], True),
    "pareto": (["maximize", "minimize"], True),
}


class TrialFailure(Exception):
    """The trial's child failed a case; Optuna records the trial as FAIL."""


@dataclass
class TuneSettings:
    objective: str = "balance"
    sampler: str = "tpe"
    literals: bool = False
    seed: int | None = None
    limits: sandbox.Limits = sandbox.Limits()
    jobs: int = 1
    repeats: int = 3
    quiet: bool = False  # else one line per finished trial on stderr
    executor: Executor = field(default_factory=LocalExecutor)  # where trials' tasks run


def tunable_knobs(candidate: Candidate, literals: bool) -> list[Knob]:
    """The candidate's declared knobs, or with ``literals`` its numeric literals."""
    knobs = find_literals(candidate.source) if literals else declared_knobs(candidate.source)
    if not knobs:
        hint = "" if literals else " (declare KNOBS, or pass --literals)"
        raise ValueError(f"{candidate.name} has no knob to tune{hint}")
    return knobs


def child_for(candidate: Candidate, knobs: list[Knob], values: dict[str, float], label: str,
              origin: str = "tune") -> Candidate:
    """``candidate`` with ``values`` baked in, named ``NAME@label`` and recorded as its child."""
    desc = ", ".join(f"{k}={v:g}" for k, v in sorted(values.items()))
    return Candidate(name=f"{candidate.name}@{label}", source=bake(candidate.source, knobs, values),
                     description=f"{origin} knobs: {desc}", origin=origin, parent_ids=(candidate.id,))


class Objective:
    """The callable Optuna optimises."""

    def __init__(self, candidate: Candidate, store: Store, cases: list[Case], settings: TuneSettings):
        self.candidate, self.store, self.cases, self.settings = candidate, store, cases, settings
        self.knobs = tunable_knobs(candidate, settings.literals)
        self.directions, self.timed = OBJECTIVES[settings.objective]

    def suggest(self, trial: optuna.Trial) -> dict[str, float]:
        values = {}
        for k in self.knobs:
            if k.kind == "int":
                values[k.name] = trial.suggest_int(k.name, int(k.low), int(k.high), log=k.log)
            else:
                values[k.name] = trial.suggest_float(k.name, k.low, k.high, log=k.log)
        return values

    def _run(self, child: Candidate, cases: list[Case], timed: bool):
        config = RunConfig(limits=self.settings.limits, jobs=self.settings.jobs, repeats=self.settings.repeats,
                           quiet=True, time_runs=timed, executor=self.settings.executor)
        report = evaluate(self.store, [child], cases, config, command="tune", suite=None)
        per_case = case_results(self.store, [c.key for c in cases], [child.id, report.baseline_id],
                                report.baseline_id)
        return per_case[per_case["candidate_id"] == child.id]

    def __call__(self, trial: optuna.Trial):
        child = child_for(self.candidate, self.knobs, self.suggest(trial), f"trial{trial.number}")
        trial.set_user_attr("candidate_id", child.id)
        multi = len(self.directions) > 1
        for step in range(len(self.cases)):
            rows = self._run(child, self.cases[: step + 1], timed=False)
            failed = rows[~rows["ok"]]
            if len(failed):
                reason = f"{failed['case'].iloc[0]}: {failed['failure_kind'].iloc[0]}: {failed['reason'].iloc[0]}"
                trial.set_user_attr("failure", reason)
                raise TrialFailure(reason)
            if not multi:
                trial.report(float(rows["gpu_balancedness"].mean()), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        rows = self._run(child, self.cases, timed=self.timed)
        summary = leaderboard(rows.assign(ok=True)).iloc[0]
        balance = float(summary["gpu_balancedness"])
        trial.set_user_attr("gpu_balancedness", balance)
        if not self.timed:
            return balance
        relative_runtime = 1.0 / float(summary["speedup"])  # candidate time / baseline time, same run
        trial.set_user_attr("relative_runtime", relative_runtime)
        if self.settings.objective == "runtime":
            return relative_runtime
        if self.settings.objective == "combined":
            return float(summary["combined_score"])
        return balance, relative_runtime


def tune(candidate: Candidate, store: Store, cases: list[Case], trials: int, study_name: str, storage: str,
         settings: TuneSettings) -> tuple[optuna.Study, Objective]:
    """Run ``trials`` trials of ``study_name`` (created or joined) in ``storage``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store.add_candidate(candidate)
    objective = Objective(candidate, store, cases, settings)
    multi = len(objective.directions) > 1
    sampler = make_sampler(settings.sampler, settings.seed, multi)
    pruner = optuna.pruners.NopPruner() if multi else optuna.pruners.MedianPruner(n_startup_trials=3)
    study = retry_on_schema_race(lambda: optuna.create_study(
        study_name=study_name, storage=storage, load_if_exists=True, directions=objective.directions,
        sampler=sampler, pruner=pruner))
    study.set_user_attr("candidate_id", candidate.id)
    callbacks = [] if settings.quiet else [_report_trial]
    study.optimize(objective, n_trials=trials, catch=(TrialFailure,), callbacks=callbacks)
    return study, objective


def _report_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    values = "" if trial.values is None else " " + ", ".join(f"{v:.4g}" for v in trial.values)
    print(f"trial {trial.number}: {trial.state.name.lower()}{values} {trial.params}", file=sys.stderr, flush=True)


def best_trial(study: optuna.Study, pick: int = 0) -> optuna.trial.FrozenTrial:
    """The best trial; for a Pareto study the ``pick``-th Pareto point by decreasing balancedness."""
    if len(study.directions) == 1:
        return study.best_trial
    front = sorted(study.best_trials, key=lambda t: -t.values[0])
    if not front:
        raise ValueError("the study has no completed trial")
    return front[min(pick, len(front) - 1)]


def export_best(study: optuna.Study, objective: Objective, store: Store, path: Path, pick: int = 0) -> Candidate:
    """Write the best (or picked Pareto) trial's child to ``path`` and record it in the store."""
    trial = best_trial(study, pick)
    values = {k.name: trial.params[k.name] for k in objective.knobs}
    child = child_for(objective.candidate, objective.knobs, values, "tuned")
    child = replace(child, name=f"{objective.candidate.name}_tuned", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(child.source)
    store.add_candidate(child)
    return child


def write_study_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Optimisation history, parameter importances and (two objectives) the Pareto front, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    out_dir.mkdir(parents=True, exist_ok=True)
    multi = len(study.directions) > 1
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    plots = []
    jobs = [("history", lambda: ovm.plot_optimization_history(
        study, target=(lambda t: t.values[0]) if multi else None, target_name="GPU balancedness"))]
    if len(complete) >= 2:
        jobs.append(("importances", lambda: ovm.plot_param_importances(
            study, target=(lambda t: t.values[0]) if multi else None)))
    if multi:
        jobs.append(("pareto", lambda: ovm.plot_pareto_front(study, target_names=["GPU balancedness",
                                                                                   "runtime / baseline"])))
    for name, make in jobs:
        try:
            ax = make()
        except (ValueError, RuntimeError) as exc:  # e.g. importances with a single distinct value
            print(f"warning: no {name} plot: {exc}")
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
        path = out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        plots.append(path)
    return plots


def trial_table(study: optuna.Study):
    """Trials as a pandas DataFrame (number, state, values, params, user attributes)."""
    df = study.trials_dataframe(attrs=("number", "state", "value" if len(study.directions) == 1 else "values",
                                       "params", "user_attrs"))
    return df
