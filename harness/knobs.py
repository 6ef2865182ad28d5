"""Tunable numbers in a candidate's source: declared knobs and numeric literals.

A candidate declares knobs with a module-level mapping of constant name to
``(type, low, high)`` or ``(type, low, high, "log")``, read without executing the code::

    SWAP_STEPS = 3
    NOISE = 0.1
    KNOBS = {"SWAP_STEPS": ("int", 1, 12), "NOISE": ("float", 0.0, 0.3)}

The module runs unchanged with its defaults. Any numeric literal can also be treated
as a knob (:func:`find_literals`), so evolved candidates with no declarations can be
perturbed or tuned too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


class KnobError(ValueError):
    pass


@dataclass(frozen=True)
class Knob:
    """One tunable number: where it is in the source and its range."""

    name: str
    kind: str  # "int" or "float"
    low: float
    high: float
    log: bool
    default: float
    line: int  # 1-based line of the literal
    col: int  # 0-based column span of the literal on that line
    end_col: int


def _literal_nodes(tree: ast.AST) -> list[ast.Constant]:
    """Numeric literals (not bools), excluding docstrings and negative-sign wrappers' inner nodes."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.end_lineno == node.lineno:
            out.append(node)
    return sorted(out, key=lambda n: (n.lineno, n.col_offset))


def declared_knobs(source: str) -> list[Knob]:
    """Knobs declared through a module-level ``KNOBS`` mapping (see module docstring)."""
    tree = ast.parse(source)
    spec, values = None, {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "KNOBS":
                try:
                    spec = ast.literal_eval(node.value)
                except ValueError:
                    raise KnobError(f"line {node.lineno}: KNOBS must be a literal mapping") from None
            elif isinstance(node.value, ast.Constant) and type(node.value.value) in (int, float):
                values[name] = node.value
    if spec is None:
        return []
    knobs = []
    for name, entry in spec.items():
        if name not in values:
            raise KnobError(f"knob {name!r} has no module-level numeric assignment")
        kind, low, high, *rest = entry
        if kind not in ("int", "float"):
            raise KnobError(f"knob {name!r}: type must be 'int' or 'float', not {kind!r}")
        node = values[name]
        knobs.append(Knob(name, kind, float(low), float(high), bool(rest and rest[0] == "log"), node.value,
                          node.lineno, node.col_offset, node.end_col_offset))
    return knobs


def find_literals(source: str, around: float = 4.0) -> list[Knob]:
    """Every numeric literal except 0 and 1, as a knob ranging over ``[v / around, v * around]``.

    0 and 1 are nearly always structural (indices, identities), so they are left alone.
    """
    knobs = []
    for node in _literal_nodes(ast.parse(source)):
        value = node.value
        if value in (0, 1):
            continue
        kind = "int" if isinstance(value, int) else "float"
        low, high = sorted((value / around, value * around))
        if kind == "int":
            low, high = max(1, int(low)), max(2, int(round(high)))
        knobs.append(Knob(f"literal_L{node.lineno}_C{node.col_offset}", kind, float(low), float(high), False,
                          value, node.lineno, node.col_offset, node.end_col_offset))
    return knobs


def bake(source: str, knobs: list[Knob], values: dict[str, float]) -> str:
    """``source`` with each named knob's literal replaced by its new value."""
    lines = source.split("\n")
    by_name = {k.name: k for k in knobs}
    # Right to left on each line, so earlier column offsets stay valid.
    for knob in sorted((by_name[n] for n in values), key=lambda k: (k.line, k.col), reverse=True):
        value = values[knob.name]
        text = str(int(round(value))) if knob.kind == "int" else repr(float(value))
        line = lines[knob.line - 1]
        lines[knob.line - 1] = line[: knob.col] + text + line[knob.end_col :]
    return "\n".join(lines)
