"""Mutation operators, one per module, each registered in :data:`OPERATORS` (see :mod:`.base`)."""

from harness.operators.base import (
    NO_POPULATION,
    OPERATORS,
    EndpointError,
    Operator,
    OperatorError,
    Population,
    build_operators,
    root_name,
)
from harness.operators.crossover import CROSSABLE, Crossover
from harness.operators.diff_library import DiffLibrary
from harness.operators.knobs import KnobPerturbation
from harness.operators.llm import LLMOperator
from harness.population import Inspiration

__all__ = ["CROSSABLE", "NO_POPULATION", "OPERATORS", "Crossover", "DiffLibrary", "EndpointError", "Inspiration",
           "KnobPerturbation", "LLMOperator", "Operator", "OperatorError", "Population", "build_operators", "root_name"]
