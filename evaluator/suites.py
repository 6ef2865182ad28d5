"""Cases (workload x preset x seed) and named suites of them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np

from evaluator.deployment import Deployment, DeploymentError
from evaluator.presets import Preset, get_preset
from evaluator.registry import Registry
from evaluator.shipped import shipped
from evaluator.traces import TraceError, load_trace
from evaluator.workloads import generate

DEFAULT_WINDOWS = 4


@dataclass(frozen=True)
class Case:
    """One evaluation case: a load history on one deployment of one model.

    ``windows`` load matrices are generated (or read from a trace); placements computed
    from window t are scored on window t + 1 (and on t itself, the oracle score).
    ``deployment`` (a :class:`evaluator.deployment.Deployment` spec) replaces the preset's
    default one.
    """

    family: str
    preset: str | None
    seed: int
    windows: int = DEFAULT_WINDOWS
    params: tuple[tuple[str, float], ...] = field(default=())
    # A traced case reads its windows from a file instead (family "trace"); the file's
    # content hash is part of the key, so an edited trace is a new case. Layers and
    # experts come from the trace (``shape``), the deployment from the preset or ``deployment``.
    trace: str | None = None
    window: int | None = None
    trace_sha: str | None = None
    # A private case (see :func:`private_cases`) replaces public seed ``private_of``.
    private_of: int | None = None
    deployment: str | None = None
    shape: tuple[int, int] | None = None

    @classmethod
    def from_trace(cls, path: str, preset: str | None = None, window: int | None = None,
                   deployment: str | None = None) -> Case:
        """A case replaying the trace at ``path`` on ``preset``'s deployment or ``deployment``.

        Checked now: a bad file raises TraceError, a deployment that cannot hold the trace's
        experts raises DeploymentError.
        """
        if preset is None and deployment is None:
            raise DeploymentError("a trace needs a preset or a deployment (slots=S,gpus=G,nodes=N)")
        windows = load_trace(path, window)
        case = cls("trace", preset, 0, len(windows), trace=str(path), window=window, trace_sha=_content_hash(path),
                   deployment=_canonical(deployment), shape=(windows.shape[1], windows.shape[2]))
        case.get_preset()
        return case

    def with_deployment(self, deployment: str | None) -> Case:
        """This case on ``deployment`` (checked: DeploymentError names the case)."""
        case = replace(self, deployment=_canonical(deployment))
        case.get_preset()
        return case

    @property
    def where(self) -> str:
        """``@preset[deployment]``: the deployment part of the name."""
        return f"@{self.preset or ''}" + (f"[{self.deployment}]" if self.deployment else "")

    @property
    def name(self) -> str:
        if self.trace is not None:
            return f"trace:{Path(self.trace).name}{self.where}" + (f"/w{self.window}" if self.window else "")
        extra = "".join(f",{k}={v:g}" for k, v in self.params)
        if self.windows != DEFAULT_WINDOWS:
            extra += f",windows={self.windows}"
        if self.private_of is not None:  # the seed itself is the secret
            return f"{self.family}{extra}{self.where}#private{self.private_of}"
        return f"{self.family}{extra}{self.where}#s{self.seed}"

    @property
    def key(self) -> str:
        """Stable content key: equal cases share it across runs and machines."""
        payload = [self.family, self.preset, self.seed, self.windows, list(self.params)]
        if self.trace is not None:
            payload += [self.trace_sha, self.window]
        if self.private_of is not None:
            payload += ["private", self.private_of]
        if self.deployment is not None:
            payload += ["deployment", self.deployment]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]

    def get_preset(self) -> Preset:
        """The model and deployment this case runs on (DeploymentError when they do not fit)."""
        deployment = Deployment.parse(self.deployment) if self.deployment else None
        if self.preset is None:
            L, E = self.shape
            return Preset("trace", "(from the trace)", L, E, 1, 0, E, 1, 1).deployed(deployment)
        base = get_preset(self.preset)
        layers, experts = self.shape if self.shape else (None, None)
        if deployment is None and self.shape is None:
            return base
        return base.deployed(deployment, layers, experts)

    def history(self) -> np.ndarray:
        """``[windows, L, E]`` token counts: int64, or float64 for a trace whose loads are not whole.

        A traced case reads its file now (on a cluster, at the same path on the worker's
        machine) and refuses one whose content is not the case's (TraceError).
        """
        if self.trace is not None:
            found = None if self.trace_sha is None else _content_hash(self.trace)
            if found != self.trace_sha:
                raise TraceError(f"{self.trace}: its content changed since case {self.name} was made "
                                 f"(hash {found}, the case's {self.trace_sha})")
            return as_counts(load_trace(self.trace, self.window))
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
            "deployment": self.deployment,
            "shape": list(self.shape) if self.shape else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Case:
        shape = d.get("shape")
        return cls(d["family"], d["preset"], int(d["seed"]), int(d["windows"]), tuple(sorted(d["params"].items())),
                   d.get("trace"), d.get("window"), d.get("trace_sha"), d.get("private_of"), d.get("deployment"),
                   tuple(shape) if shape else None)


def _canonical(deployment: str | None) -> str | None:
    return None if deployment is None else Deployment.parse(deployment).spec


def as_counts(history: np.ndarray) -> np.ndarray:
    """``history`` as int64 token counts when every load is whole (what published evaluators pass)."""
    if history.dtype.kind in "iu":
        return history.astype(np.int64, copy=False)
    if np.all(np.mod(history, 1) == 0) and float(np.abs(history).max(initial=0)) < 2**62:
        return history.astype(np.int64)
    return history


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


# Written out, not read from FAMILIES: a new workload family must not silently change a suite's cases.
SUITE_FAMILIES = ["uniform", "zipf", "lognormal", "hotspot", "group_skewed", "drifting", "bursty"]
REAL_TRACES = shipped("traces", "real")
# (file, model preset giving the deployment, records per window); provenance in traces/real/README.md.
_REAL = [
    ("harmoeny_qwen15moe_bookcorpus.npy", "qwen1.5-moe-a2.7b", 1),
    ("harmoeny_qwen15moe_wikitext.npy", "qwen1.5-moe-a2.7b", 1),
    ("exflow_qwen_bookcorpus.npy", "qwen1.5-moe-a2.7b", 1),
    ("harmoeny_switch128_bookcorpus.npy", "switch-base-128", 1),
    ("harmoeny_switch128_wikitext.npy", "switch-base-128", 1),
    ("mixtral8x7b_gsm8k_humaneval_pertoken.npy", "mixtral-8x7b", 16),
]

class Suite:
    """A named set of cases; subclasses are dataclasses registered in :data:`SUITES`."""

    def cases(self) -> list[Case]:
        raise NotImplementedError


SUITES: Registry[Suite] = Registry("suite")


@SUITES.register("default")
@dataclass(frozen=True)
class DefaultSuite(Suite):
    """Every family on deepseek-v3, qwen3-235b and gpt-oss-120b; its three hardest on kimi-k2 and mixtral.

    One hierarchical and two global presets carry every family; the two remaining presets
    get the families that stress them most."""

    def cases(self) -> list[Case]:
        return (_grid(SUITE_FAMILIES, ["deepseek-v3", "qwen3-235b", "gpt-oss-120b"], [0])
                + _grid(["zipf", "hotspot", "drifting"], ["kimi-k2", "mixtral-8x7b"], [0]))


@SUITES.register("smoke")
@dataclass(frozen=True)
class SmokeSuite(Suite):
    """A handful of small cases for a quick check."""

    def cases(self) -> list[Case]:
        return _grid(["zipf", "hotspot", "group_skewed"], ["deepseek-v3", "gpt-oss-120b"], [0], windows=2)


@SUITES.register("quick")
@dataclass(frozen=True)
class QuickSuite(Suite):
    """Every family on deepseek-v3, zipf and hotspot on three other presets, two windows each (the demo's).

    One t -> t+1 step per case instead of the default's three, and no kimi-k2 (the costliest
    shape to time): a few minutes on 2 cores, and noisier; ``default`` is the reference."""

    def cases(self) -> list[Case]:
        return (_grid(SUITE_FAMILIES, ["deepseek-v3"], [0], windows=2)
                + _grid(["zipf", "hotspot"], ["qwen3-235b", "gpt-oss-120b", "mixtral-8x7b"], [0], windows=2))


@SUITES.register("full")
@dataclass(frozen=True)
class FullSuite(Suite):
    """Several seeds of every family on every preset: slower, for final comparisons."""

    def cases(self) -> list[Case]:
        return _grid(SUITE_FAMILIES, ["deepseek-v3", "qwen3-235b", "kimi-k2", "gpt-oss-120b", "mixtral-8x7b"],
                     [0, 1, 2])


@SUITES.register("real")
@dataclass(frozen=True)
class RealSuite(Suite):
    """Recorded traces of real models (traces/real/README.md), each on its model preset's deployment."""

    def cases(self) -> list[Case]:
        return [Case.from_trace(str(REAL_TRACES / f), preset, window) for f, preset, window in _REAL]


class UnknownSuiteError(KeyError):
    def __str__(self) -> str:
        return f"unknown suite {self.args[0]!r}; known: {', '.join(SUITES)}"


@cache
def _suite_cases(name: str) -> tuple[Case, ...]:
    return tuple(SUITES.create(name).cases())


def get_suite(name: str) -> list[Case]:
    """The cases of suite ``name``; :class:`UnknownSuiteError` lists the known suites."""
    if name not in SUITES:
        raise UnknownSuiteError(name)
    return list(_suite_cases(name))
