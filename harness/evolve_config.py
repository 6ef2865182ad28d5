"""An evolve run's config: the YAML keys, their types and ranges, checked before anything runs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from evaluator.registry import is_config_type
from evaluator.shipped import here_or_shipped
from evaluator.suites import Case, get_suite
from harness.executors.base import check_address
from harness.figures import get_figure
from harness.operators import build_operators


class ConfigError(ValueError):
    pass


@dataclass
class EvolveConfig:
    """An evolve run, as read from YAML (keys are these field names)."""

    name: str
    parents: list[str]
    operators: dict
    suite: str = "smoke"
    # The figure selection maximises (harness.figures; negated when lower is better).
    fitness: str = "gpu_balancedness"
    # A deployment spec (slots=S,gpus=G,nodes=N[,groups=K][,group_local=...]) for every case of the suite.
    deployment: str | None = None
    # Fitness on the suite's private twin (seeds only this store knows): no program can
    # regenerate the windows it is scored on. False: the public, published seeds.
    private: bool = True
    seed: int = 0
    islands: int = 2
    children_per_island: int = 2
    max_evaluations: int = 20
    max_seconds: float | None = None
    migration_interval: int = 3
    elite_prob: float = 0.3
    # Feature axes: metric -> bucket edges. Runtime axes make cells (and so lineage) timing-dependent.
    features: dict = field(default_factory=lambda: {"gpu_balancedness": [0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
                                                    "speedup": [0.5, 2.0, 10.0, 50.0]})
    jobs: int = 2
    timeout_s: float = 120.0
    memory_mb: int = 4096
    out: str = "results/evolve"
    # Proposals of blocking operators (the LLM's) in flight at once, while children are evaluated.
    max_concurrent: int = 4
    # A cheap suite first: {suite: NAME, min_ratio_to_parent: R}; only children reaching R times
    # their parent's fitness there are scored on the main suite. None: every child goes straight on.
    cascade: dict | None = None
    # Children whose policy code equals an evaluated one's (harness.novelty) are not evaluated.
    novelty: bool = True
    # Stop proposing once the LLM calls cost this much (needs usd_per_mtok on the models).
    max_cost_usd: float | None = None
    # A Dask scheduler (tcp://HOST:PORT) whose workers evaluate the children; None: this machine's pool.
    cluster: str | None = None


def load_config(path: str | Path) -> EvolveConfig:
    """Read and check an evolve config; :class:`ConfigError` says what and where."""
    try:
        raw = yaml.safe_load(here_or_shipped(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.__class__.__name__}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping")
    known = set(EvolveConfig.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        config = EvolveConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _check_types(path, raw)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", config.name) or ".." in config.name:
        raise ConfigError(f"{path}: name {config.name!r} must be a plain folder name (letters, digits, _ . -)")
    try:
        get_figure(config.fitness)
        suite_cases(config)
        cascade_cases(config)
        build_operators(config.operators)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def suite_cases(config: EvolveConfig) -> list[Case]:
    """The public cases of the config's suite, on its deployment (DeploymentError if they do not fit)."""
    return _on_deployment(get_suite(config.suite), config.deployment)


# What each key's value must be (bool is not an int here, an int is a float).
_KEY_TYPES = {"name": str, "parents": list, "operators": dict, "suite": str, "fitness": str,
              "deployment": (str, type(None)),
              "private": bool, "seed": int,
              "islands": int, "children_per_island": int, "max_evaluations": int, "max_seconds": (float, type(None)),
              "migration_interval": int, "elite_prob": float, "features": dict, "jobs": int, "timeout_s": float,
              "memory_mb": int, "out": str, "max_concurrent": int, "cascade": (dict, type(None)),
              "novelty": bool, "max_cost_usd": (float, type(None)), "cluster": (str, type(None))}
_POSITIVE = ("islands", "children_per_island", "max_evaluations", "migration_interval", "jobs", "timeout_s",
             "memory_mb", "max_concurrent", "max_cost_usd")


def _check_types(path: str | Path, raw: dict) -> None:
    """Refuse a value of the wrong type or range, naming the key, before anything is written."""
    for key, value in raw.items():
        want = _KEY_TYPES[key]
        wants = want if isinstance(want, tuple) else (want,)
        if not any(is_config_type(value, w) for w in wants):
            names = " or ".join("null" if w is type(None) else w.__name__ for w in wants)
            raise ConfigError(f"{path}: {key} must be {names}, got {type(value).__name__} {value!r}"[:300])
        if key in _POSITIVE and value is not None and not 0 < value < math.inf:
            raise ConfigError(f"{path}: {key} must be positive, got {value!r}")
    if not 0 <= float(raw.get("elite_prob", 0.3)) <= 1:
        raise ConfigError(f"{path}: elite_prob must be between 0 and 1")
    if not all(isinstance(p, str) for p in raw.get("parents", [])):
        raise ConfigError(f"{path}: parents must be a list of candidate files or folders")
    for axis, edges in raw.get("features", {}).items():
        if not isinstance(edges, list) or not all(isinstance(e, int | float) for e in edges):
            raise ConfigError(f"{path}: features.{axis} must be a list of bucket edges (numbers)")
    for name, options in raw.get("operators", {}).items():
        if not isinstance(options, dict):
            raise ConfigError(f"{path}: operators.{name} must be a mapping of options")
    cascade = raw.get("cascade")
    if cascade is not None:
        unknown = set(cascade) - {"suite", "min_ratio_to_parent"}
        if unknown or not isinstance(cascade.get("suite"), str):
            raise ConfigError(f"{path}: cascade must be {{suite: NAME, min_ratio_to_parent: R}}")
        ratio = cascade.get("min_ratio_to_parent", 1.0)
        if not is_config_type(ratio, float) or not 0 < ratio <= 2:
            raise ConfigError(f"{path}: cascade.min_ratio_to_parent must be a number in (0, 2], got {ratio!r}")
    if raw.get("cluster") is not None:
        try:
            check_address(raw["cluster"])
        except ValueError as exc:
            raise ConfigError(f"{path}: cluster: {exc}") from None


def cascade_cases(config: EvolveConfig) -> list[Case]:
    """The public cases of the cascade's suite, on the config's deployment ([] without a cascade)."""
    return _on_deployment(get_suite(config.cascade["suite"]), config.deployment) if config.cascade else []


def _on_deployment(cases: list[Case], deployment: str | None) -> list[Case]:
    return [c.with_deployment(deployment) for c in cases] if deployment else cases
