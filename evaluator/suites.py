"""Cases (workload x preset x seed) and named suites of them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from evaluator.presets import Preset, get_preset
from evaluator.workloads import FAMILIES, generate


@dataclass(frozen=True)
class Case:
    """One evaluation case: a synthetic load history on one preset.

    ``windows`` load matrices are generated; placements computed from window t are
    scored on window t + 1 (and on t itself, the oracle score).
    """

    family: str
    preset: str
    seed: int
    windows: int = 4
    params: tuple[tuple[str, float], ...] = field(default=())

    @property
    def name(self) -> str:
        extra = "".join(f",{k}={v:g}" for k, v in self.params)
        return f"{self.family}{extra}@{self.preset}#s{self.seed}"

    @property
    def key(self) -> str:
        """Stable content key: equal cases share it across runs and machines."""
        payload = json.dumps([self.family, self.preset, self.seed, self.windows, list(self.params)])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def get_preset(self) -> Preset:
        return get_preset(self.preset)

    def history(self) -> np.ndarray:
        """``[windows, L, E]`` int64 token counts."""
        return generate(self.family, self.get_preset(), self.seed, self.windows, dict(self.params))

    def to_dict(self) -> dict:
        return {
            "case": self.name,
            "case_key": self.key,
            "family": self.family,
            "preset": self.preset,
            "seed": self.seed,
            "windows": self.windows,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Case:
        return cls(d["family"], d["preset"], int(d["seed"]), int(d["windows"]), tuple(sorted(d["params"].items())))


def _grid(families: list[str], presets: list[str], seeds: list[int], windows: int = 4) -> list[Case]:
    return [Case(f, p, s, windows) for p in presets for f in families for s in seeds]


ALL_FAMILIES = list(FAMILIES)

SUITES: dict[str, list[Case]] = {
    # Every family on a hierarchical (deepseek-v3) and two global presets, plus the
    # two remaining presets on the families that stress them most.
    "default": _grid(ALL_FAMILIES, ["deepseek-v3", "qwen3-235b", "gpt-oss-120b"], [0])
    + _grid(["zipf", "hotspot", "drifting"], ["kimi-k2", "mixtral-8x7b"], [0]),
    # A handful of small cases for a quick check.
    "smoke": _grid(["zipf", "hotspot", "group_skewed"], ["deepseek-v3", "gpt-oss-120b"], [0], windows=2),
    # Several seeds of every family on every preset: slower, for final comparisons.
    "full": _grid(ALL_FAMILIES, ["deepseek-v3", "qwen3-235b", "kimi-k2", "gpt-oss-120b", "mixtral-8x7b"], [0, 1, 2]),
}


class UnknownSuiteError(KeyError):
    def __str__(self) -> str:
        return f"unknown suite {self.args[0]!r}; known: {', '.join(SUITES)}"


def get_suite(name: str) -> list[Case]:
    """The cases of suite ``name``; :class:`UnknownSuiteError` lists the known suites."""
    try:
        return SUITES[name]
    except KeyError:
        raise UnknownSuiteError(name) from None
