"""Whether a child can behave differently from code already evaluated, read from its source alone.

:func:`policy_fingerprint` hashes what the policy can execute: the entry points the harness
calls (the candidate's own ``rebalance_experts``, else the primitives it composes) and,
transitively, every top-level function, class and constant they name, as ASTs without
docstrings (comments never reach the AST), plus every top-level statement that runs on
import and is not a definition. Two sources with the same fingerprint are the same policy: a
reformatted or re-commented copy, or a child that edits a primitive its own
``rebalance_experts`` never calls. It only reads the source; nothing is executed.
"""

from __future__ import annotations

import ast
import hashlib

from harness.candidate import OPTIONAL, REQUIRED

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _without_docstrings(node: ast.AST) -> ast.AST:
    for sub in ast.walk(node):
        body = getattr(sub, "body", None)
        if (isinstance(sub, (*_DEFINITIONS, ast.Module)) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            sub.body = body[1:] or [ast.Pass()]
    return node


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, _DEFINITIONS):
        return [node.name]
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


def policy_fingerprint(source: str) -> str:
    """A hash of the code the policy of ``source`` can run (see the module docstring).

    Raises:
        SyntaxError: ``source`` does not parse.
    """
    tree = _without_docstrings(ast.parse(source))
    definitions: dict[str, list[ast.stmt]] = {}
    always: list[ast.stmt] = []  # runs on import whatever is called: imports, calls, conditionals
    for node in tree.body:
        names = _defined_names(node)
        for name in names:
            definitions.setdefault(name, []).append(node)
        if not names:
            always.append(node)
    if "rebalance_experts" in definitions:
        entries = ["rebalance_experts"]
    else:
        entries = [name for name in (*REQUIRED, *OPTIONAL) if name in definitions]
    reached: list[ast.stmt] = []
    seen: set[str] = set()
    frontier = list(entries) + [n.id for node in always for n in ast.walk(node) if isinstance(n, ast.Name)]
    while frontier:
        name = frontier.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        for node in definitions[name]:
            if node not in reached:
                reached.append(node)
                frontier.extend(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
                frontier.extend(a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute))
                # A name in a string may be looked up (getattr, globals()): it counts as read.
                frontier.extend(c.value for c in ast.walk(node) if isinstance(c, ast.Constant)
                                and isinstance(c.value, str) and c.value.isidentifier())
    # Source order, so moving a function about is no change either way it is read.
    order = {id(node): i for i, node in enumerate(tree.body)}
    kept = sorted(always + reached, key=lambda node: order[id(node)])
    text = "\n".join(ast.dump(node, include_attributes=False) for node in kept)
    return hashlib.sha256((",".join(entries) + "\n" + text).encode()).hexdigest()[:16]
