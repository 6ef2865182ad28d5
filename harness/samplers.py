"""Optuna samplers ``tune`` can use, one registered dataclass each (optuna is imported only to build one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from evaluator.registry import Registry

SAMPLERS: Registry = Registry("sampler", internal=())


@dataclass
class _Sampler:
    """A sampler's options; ``optuna_class`` (in ``optuna.samplers``) is built with them and ``extra``."""

    seed: int | None = None
    optuna_class: ClassVar[str]
    extra: ClassVar[dict] = {}
    multi_objective: ClassVar[bool] = True

    def build(self):
        import optuna

        return getattr(optuna.samplers, self.optuna_class)(seed=self.seed, **self.extra)


@SAMPLERS.register("tpe")
@dataclass
class TPE(_Sampler):
    optuna_class = "TPESampler"


@SAMPLERS.register("cmaes")
@dataclass
class CmaEs(_Sampler):
    optuna_class = "CmaEsSampler"
    extra = {"warn_independent_sampling": False}
    multi_objective = False


@SAMPLERS.register("nsga2")
@dataclass
class NSGA2(_Sampler):
    optuna_class = "NSGAIISampler"


@SAMPLERS.register("random")
@dataclass
class Random(_Sampler):
    optuna_class = "RandomSampler"


def make_sampler(name: str, seed: int | None, multi_objective: bool):
    """The Optuna sampler registered as ``name``; ValueError if unknown, or single-objective on a Pareto study."""
    sampler = SAMPLERS.create(name, {"seed": seed})
    if multi_objective and not sampler.multi_objective:
        raise ValueError(f"the {name} sampler is single-objective; use nsga2 or tpe for pareto")
    return sampler.build()
