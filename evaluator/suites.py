"""Cases (workload x preset x seed) and named suites of them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from evaluator.presets import Preset, get_preset
from evaluator.traces import load_trace
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
    # A traced case reads its windows from a file instead (family "trace"); the file's
    # content hash is part of the key, so an edited trace is a new case.
    trace: str | None = None
    window: int | None = None
    trace_sha: str | None = None
    # A private case (see :func:`private_cases`) replaces public seed ``private_of``.
    private_of: int | None = None

    @classmethod
    def from_trace(cls, path: str, preset: str, window: int | None = None) -> Case:
        """A case replaying the trace at ``path`` on ``preset`` (checked now: bad files raise TraceError)."""
        p = get_preset(preset)
        windows = load_trace(path, window, p.num_layers, p.num_experts)
        return cls("trace", preset, 0, len(windows), trace=str(path), window=window, trace_sha=_content_hash(path))

    @property
    def name(self) -> str:
        if self.trace is not None:
            return f"trace:{Path(self.trace).name}@{self.preset}" + (f"/w{self.window}" if self.window else "")
        extra = "".join(f",{k}={v:g}" for k, v in self.params)
        if self.private_of is not None:  # the seed itself is the secret
            return f"{self.family}{extra}@{self.preset}#private{self.private_of}"
        return f"{self.family}{extra}@{self.preset}#s{self.seed}"

    @property
    def key(self) -> str:
        """Stable content key: equal cases share it across runs and machines."""
        payload = [self.family, self.preset, self.seed, self.windows, list(self.params)]
        if self.trace is not None:
            payload += [self.trace_sha, self.window]
        if self.private_of is not None:
            payload += ["private", self.private_of]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]

    def get_preset(self) -> Preset:
        return get_preset(self.preset)

    def history(self) -> np.ndarray:
        """``[windows, L, E]`` token counts."""
        if self.trace is not None:
            p = self.get_preset()
            return load_trace(self.trace, self.window, p.num_layers, p.num_experts)
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
            "trace": self.trace,
            "window": self.window,
            "trace_sha": self.trace_sha,
            "private_of": self.private_of,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Case:
        return cls(d["family"], d["preset"], int(d["seed"]), int(d["windows"]), tuple(sorted(d["params"].items())),
                   d.get("trace"), d.get("window"), d.get("trace_sha"), d.get("private_of"))


def private_cases(cases: list[Case], secret: str) -> list[Case]:
    """``cases`` with every synthetic seed replaced by one derived from ``secret``.

    A public suite's fixed seeds are in this repository, so a program that copies the
    generator can regenerate the windows it is scored on. Fitness for evolution and
    tuning uses these instead: ``secret`` is drawn once per store and kept only there
    (:meth:`harness.store.Store.suite_secret`), never reaching a candidate's process.
    Traced cases are unchanged. A private case is named ``...#privateN`` and never shares
    a key with a public one.
    """
    out = []
    for case in cases:
        if case.trace is not None or case.private_of is not None:
            out.append(case)
            continue
        digest = hashlib.sha256(f"{secret}:{case.key}".encode()).digest()
        out.append(replace(case, seed=int.from_bytes(digest[:4], "little"), private_of=case.seed))
    return out


def _content_hash(path: str) -> str:
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


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
