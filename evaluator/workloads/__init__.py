"""Seeded synthetic expert-load histories, one workload family per module of this package.

Every family gives integer token counts ``[T, L, E]`` (``T`` windows, ``L`` MoE layers,
``E`` experts) drawn as multinomial samples of a per-window expert popularity, so that
consecutive windows differ by drift and by sampling noise as real windows do. The same
``(family, preset, seed, params)`` always gives the same history.

A new family is one new module here (a :class:`Workload` dataclass registered in
:data:`WORKLOADS`); every module of the package is imported, so nothing else changes.
Suites list their families by name, so a new one joins no suite by itself.
"""

import importlib
import pkgutil

from evaluator.workloads.base import STEPS_PER_WINDOW, TOKENS_PER_STEP, WORKLOADS, Workload, generate

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["STEPS_PER_WINDOW", "TOKENS_PER_STEP", "WORKLOADS", "Workload", "generate"]
