"""Optuna samplers ``tune`` can use, one registered dataclass each (optuna is imported only to build one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.registry import Registry

SAMPLERS: Registry = Registry("sampler", internal=())


@SAMPLERS.register("tpe")
@dataclass
class TPE:
    seed: int | None = None
    multi_objective: ClassVar[bool] = True

    def build(self):
        import optuna

        return optuna.samplers.TPESampler(seed=self.seed)


@SAMPLERS.register("cmaes")
@dataclass
class CmaEs:
    seed: int | None = None
    multi_objective: ClassVar[bool] = False

    def build(self):
        import optuna

        return optuna.samplers.CmaEsSampler(seed=self.seed, warn_independent_sampling=False)


@SAMPLERS.register("nsga2")
@dataclass
class NSGA2:
    seed: int | None = None
    multi_objective: ClassVar[bool] = True

    def build(self):
        import optuna

        return optuna.samplers.NSGAIISampler(seed=self.seed)


@SAMPLERS.register("random")
@dataclass
class Random:
    seed: int | None = None
    multi_objective: ClassVar[bool] = True

    def build(self):
        import optuna

        return optuna.samplers.RandomSampler(seed=self.seed)


def make_sampler(name: str, seed: int | None, multi_objective: bool):
    """The Optuna sampler registered as ``name``; ValueError if unknown, or single-objective on a Pareto study."""
    sampler = SAMPLERS.create(name, {"seed": seed})
    if multi_objective and not sampler.multi_objective:
        raise ValueError(f"the {name} sampler is single-objective; use nsga2 or tpe for pareto")
    return sampler.build()
