"""The candidate contract: what a candidate module must define, and how one is loaded.

A candidate is plain Python source defining

* ``balanced_packing(weight [X, n], num_packs) -> (pack_index [X, n], rank_in_pack [X, n])``
* ``replicate_experts(weight [X, E], num_phy) -> (phy2log [X, num_phy], rank [X, num_phy], logcnt [X, E])``

and optionally

* ``balanced_packing_diverse(weight [X, n], label [X, n], num_packs)``: used for the
  replica-to-GPU step, ``label`` being each replica's logical expert id;
* ``rebalance_experts(weight [L, E], num_replicas, num_groups, num_nodes, num_gpus)
  -> (phy2log [L, P], log2phy [L, E, R], logcnt [L, E])``: then used as is instead of
  the composed policy of :mod:`harness.policy`. It may also take the keyword
  ``previous_phy2log`` (``[L, P]``, the placement in force, or None on the first call):
  the harness passes it in multi-window evaluation and replay, so a policy can keep
  what already sits on the GPUs instead of moving expert weights. It may take the keyword
  ``load_history`` (``[k, L, E]``, the windows observed before ``weight``, oldest first,
  at most :data:`evaluator.scoring.HISTORY_WINDOWS` of them, ``k = 0`` on the first
  call): a policy can then place for the traffic to come rather than the window seen.

Source is only parsed here (:func:`check_source`); it is executed only by
:func:`load_module`, which the sandbox calls inside a worker process.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.shipped import here_or_shipped, shipped
from harness.policy import RebalanceFn, compose_rebalance

REQUIRED = {"balanced_packing": 2, "replicate_experts": 2}
OPTIONAL = {"balanced_packing_diverse": 3, "rebalance_experts": 5}



class ContractError(ValueError):
    """The candidate does not meet the contract; the message is one line."""


@dataclass(frozen=True)
class Candidate:
    """A candidate's source and provenance. Identity is the hash of the source."""

    name: str
    source: str
    path: str | None = None
    description: str = ""
    origin: str = "file"
    parent_ids: tuple[str, ...] = field(default=())
    diff: str | None = None

    @property
    def id(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def from_file(path: str | Path) -> Candidate:
    """A candidate from a ``.py`` file; its name is the file's stem."""
    path = Path(path)
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read candidate ({exc.__class__.__name__}: {exc})") from None
    return Candidate(name=path.stem, source=source, path=str(path))


def from_source(source: str, name: str = "inline", **provenance) -> Candidate:
    """A candidate from source text."""
    return Candidate(name=name, source=source, **provenance)


def discover(spec: str | Path) -> list[Candidate]:
    """Candidates named by ``spec``: a ``.py`` file, or every ``.py`` file in a directory.

    Files whose names start with ``_`` are skipped in directories. A relative path that
    does not exist here but does among the shipped files (``candidates/``, e.g. when
    installed from a wheel) names those.
    """
    path = here_or_shipped(spec)
    if path.is_dir():
        return [from_file(p) for p in sorted(path.glob("*.py")) if not p.name.startswith("_")]
    if path.is_file():
        return [from_file(path)]
    raise ContractError(f"{spec}: no such candidate file or directory")


def baseline() -> Candidate:
    """The DeepSeek baseline every run is measured against."""
    return from_file(shipped("candidates", "deepseek_baseline.py"))


def _positional_arity(node: ast.FunctionDef) -> tuple[int, int]:
    """(required, maximum) positional parameters; maximum is large with ``*args``."""
    args = node.args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    return required, (10**6 if args.vararg else positional)


def check_source(candidate: Candidate) -> None:
    """Static contract check: the source parses and defines the functions with usable arities.

    Raises:
        ContractError: one line naming the problem.
    """
    try:
        tree = ast.parse(candidate.source, filename=candidate.path or candidate.name)
    except SyntaxError as exc:
        raise ContractError(f"{candidate.name}: syntax error at line {exc.lineno}: {exc.msg}") from None
    except (RecursionError, MemoryError):  # the parser's own limits, reached by deeply nested code
        raise ContractError(f"{candidate.name}: nested too deeply to parse") from None
    defined = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assigned = {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    has_own_policy = "rebalance_experts" in defined or "rebalance_experts" in assigned
    for fname, arity in REQUIRED.items() | OPTIONAL.items():
        node = defined.get(fname)
        if node is None:
            if fname in REQUIRED and not has_own_policy and fname not in assigned:
                raise ContractError(f"{candidate.name}: missing required function {fname}()")
            continue
        low, high = _positional_arity(node)
        if not low <= arity <= high:
            raise ContractError(
                f"{candidate.name}: {fname}() takes {low}..{high} positional arguments, contract needs {arity}"
            )


def load_module(candidate: Candidate) -> types.ModuleType:
    """Execute the candidate's source as a fresh module. Runs untrusted code: call it in a worker.

    Raises:
        ContractError: the module fails to import or lacks a required function.
    """
    check_source(candidate)
    module = types.ModuleType(f"eplb_candidate_{candidate.id}")
    module.__file__ = candidate.path or f"<{candidate.name}>"
    sys.modules[module.__name__] = module
    try:
        code = compile(candidate.source, module.__file__, "exec")
        exec(code, module.__dict__)
    except Exception as exc:
        raise ContractError(f"{candidate.name}: import failed: {exc.__class__.__name__}: {exc}") from None
    for fname, arity in REQUIRED.items() | OPTIONAL.items():
        fn = getattr(module, fname, None)
        if fn is None:
            continue
        if not callable(fn):
            raise ContractError(f"{candidate.name}: {fname} is not callable")
        try:
            inspect.signature(fn).bind(*range(arity))
        except TypeError:
            signature = inspect.signature(fn)
            raise ContractError(f"{candidate.name}: {fname}{signature} cannot take {arity} arguments") from None
        except ValueError:
            pass  # builtins without a signature: trust them
    return module


# What the harness can tell a policy beside the window, as optional keywords.
CONTEXT_KEYWORDS = ("previous_phy2log", "load_history")


def accepted_context(fn: Callable) -> tuple[str, ...]:
    """Which of :data:`CONTEXT_KEYWORDS` ``fn`` takes (all of them when it takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return ()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return CONTEXT_KEYWORDS
    names = {p.name for p in params}
    return tuple(k for k in CONTEXT_KEYWORDS if k in names)


def rebalance_function(module: types.ModuleType) -> RebalanceFn:
    """The candidate's policy, always callable with the optional context keywords.

    That is the candidate's own ``rebalance_experts`` if it has one, else the composed
    policy, called as ``policy(weight, *shape, previous_phy2log=None, load_history=None)``;
    the keywords the policy does not take (:func:`accepted_context`) are dropped for it.
    ``previous_phy2log [L, P]`` is the placement in force (None on the first call);
    ``load_history [k, L, E]`` the windows observed before ``weight``, oldest first.
    The returned function's ``accepted`` attribute names the keywords the policy takes.
    """
    own = getattr(module, "rebalance_experts", None)
    policy = own if callable(own) else compose_rebalance(module)
    accepted = accepted_context(policy)

    def with_context(weight, num_replicas, num_groups, num_nodes, num_gpus, previous_phy2log=None,
                     load_history=None):
        given = {"previous_phy2log": previous_phy2log, "load_history": load_history}
        return policy(weight, num_replicas, num_groups, num_nodes, num_gpus, **{k: given[k] for k in accepted})

    with_context.accepted = accepted
    return with_context
