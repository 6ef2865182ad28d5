"""SEARCH/REPLACE diffs: parse them, apply them to a parent, check the child.

Accepted input:

* the seed envelope: ``<NAME>``, ``<DESCRIPTION>`` and one or more ``<DIFF>`` blocks;
* bare blocks ``<<<<<<< SEARCH`` / ``=======`` / ``>>>>>>> REPLACE``;
* a full-file rewrite (Python source with no markers, optionally in a ``python`` fence).

Each block is applied with the strictest match that works, recorded per block:
``exact`` text; ``whitespace`` (lines equal once stripped, blank lines ignored; the
replacement is re-indented); ``function`` (the SEARCH side's top-level functions
are matched by name: the REPLACE side's versions replace or join the parent's,
functions only in SEARCH are removed, new imports are added). The child must
compile, have no undefined global names, and meet the candidate contract; the only
repair made is adding a standard-library import the child uses but never imports.
"""

from __future__ import annotations

import ast
import difflib
import re
import symtable
import threading
from dataclasses import dataclass, field

from harness.candidate import Candidate, ContractError, check_source

SEARCH_MARK = "<<<<<<< SEARCH"
DIVIDER = "======="
REPLACE_MARK = ">>>>>>> REPLACE"

# Names a child may use without importing them, and the import that provides each.
STDLIB_IMPORTS = {
    "defaultdict": "from collections import defaultdict",
    "Counter": "from collections import Counter",
    "deque": "from collections import deque",
    "heapq": "import heapq",
    "math": "import math",
    "random": "import random",
    "itertools": "import itertools",
    "functools": "import functools",
    "bisect": "import bisect",
    "time": "import time",
    "dataclass": "from dataclasses import dataclass",
}


# CPython 3.11's AST conversion keeps its recursion depth in state the threads share: two
# threads parsing at once can fail with "AST constructor recursion depth mismatch". Code that
# parses while an operator thread may (the evolution loop) holds this lock.
SOURCE_LOCK = threading.RLock()


class DiffError(ValueError):
    """A diff that cannot be parsed or applied, or a child that is rejected: one line.

    ``closest`` is the parent's text nearest an unmatched SEARCH (what a model is shown to retry).
    """

    def __init__(self, message: str, closest: str | None = None):
        super().__init__(message)
        self.closest = closest


@dataclass(frozen=True)
class Block:
    search: str
    replace: str
    line: int  # where the block starts in the diff text, 1-based


@dataclass(frozen=True)
class Diff:
    """A parsed diff: SEARCH/REPLACE blocks, or a full-file rewrite."""

    blocks: tuple[Block, ...] = ()
    rewrite: str | None = None
    name: str | None = None
    description: str | None = None


@dataclass
class Applied:
    """A child made from a parent and a diff, with how each block matched."""

    source: str
    match_levels: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    # Blocks left out (partial application): "block N (diff line L): why".
    skipped: list[str] = field(default_factory=list)


def _tag(text: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>\s*\n?(.*?)\n?\s*</{tag}>", text, re.S)
    return m.group(1).strip() if m else None


def parse_diff(text: str) -> Diff:
    """Parse a diff in any accepted form.

    Raises:
        DiffError: a missing separator, unbalanced markers, or no content.
    """
    name, description = _tag(text, "NAME"), _tag(text, "DESCRIPTION")
    bodies = re.findall(r"<DIFF>(.*?)</DIFF>", text, re.S)
    if "<DIFF>" in text and len(bodies) != text.count("<DIFF>"):
        raise DiffError("a <DIFF> tag is not closed by </DIFF>")
    if not bodies:
        bodies = [text]
    blocks: list[Block] = []
    for body in bodies:
        offset = text.index(body) if body in text else 0
        first_line = text.count("\n", 0, offset) + 1
        blocks.extend(_parse_blocks(body, first_line))
    if blocks:
        return Diff(tuple(blocks), name=name, description=description)
    fence = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.S)
    rewrite = fence.group(1) if fence else text
    if not rewrite.strip() or "<DIFF>" in text:
        raise DiffError("the diff has no SEARCH/REPLACE block and no source to rewrite with")
    return Diff(rewrite=rewrite, name=name, description=description)


def _parse_blocks(body: str, first_line: int) -> list[Block]:
    lines = body.split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        where = first_line + i
        if stripped == SEARCH_MARK:
            mid = _next_marker(lines, i + 1, DIVIDER, f"block at line {where}: missing '{DIVIDER}' separator",
                               first_line)
            end = _next_marker(lines, mid + 1, REPLACE_MARK, f"block at line {where}: no closing '{REPLACE_MARK}'",
                               first_line)
            search = "\n".join(lines[i + 1 : mid])
            if not search.strip():
                raise DiffError(f"block at line {where}: empty SEARCH side")
            blocks.append(Block(search, "\n".join(lines[mid + 1 : end]), where))
            i = end + 1
            continue
        if stripped in (DIVIDER, REPLACE_MARK):
            raise DiffError(f"line {where}: '{stripped}' outside a SEARCH/REPLACE block")
        i += 1
    return blocks


def _next_marker(lines: list[str], start: int, expected: str, problem: str, first_line: int) -> int:
    """Index of the next marker line from ``start``; it must be ``expected``."""
    markers = (SEARCH_MARK, DIVIDER, REPLACE_MARK)
    found = next((j for j in range(start, len(lines)) if lines[j].strip() in markers), None)
    if found is None:
        raise DiffError(problem)
    if lines[found].strip() != expected:
        raise DiffError(f"{problem} before line {first_line + found}")
    return found


# -- applying ----------------------------------------------------------------------------
class _Ambiguous(Exception):
    """The SEARCH text matches several places: applying it to the first would be a guess."""

    def __init__(self, count: int):
        self.count = count


def _apply_exact(source: str, block: Block) -> str | None:
    count = source.count(block.search)
    if count > 1:
        raise _Ambiguous(count)
    return source.replace(block.search, block.replace, 1) if count else None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _apply_whitespace(source: str, block: Block) -> str | None:
    parent = source.split("\n")
    search = [line for line in block.search.split("\n") if line.strip()]
    keyed = [(i, line.strip()) for i, line in enumerate(parent) if line.strip()]
    want = [line.strip() for line in search]
    starts = [start for start in range(len(keyed) - len(want) + 1)
              if all(keyed[start + k][1] == want[k] for k in range(len(want)))]
    if len(starts) > 1:
        raise _Ambiguous(len(starts))
    for start in starts:
        first, last = keyed[start][0], keyed[start + len(want) - 1][0]
        shift = _indent(parent[first]) - _indent(search[0])
        replaced = [_reindent(line, shift) for line in block.replace.split("\n")]
        return "\n".join(parent[:first] + replaced + parent[last + 1 :])
    return None


def _reindent(line: str, shift: int) -> str:
    if not line.strip():
        return line
    if shift >= 0:
        return " " * shift + line
    return line[min(-shift, _indent(line)) :]


def _top_level(tree: ast.Module) -> tuple[dict[str, ast.AST], list[ast.stmt]]:
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    return functions, imports


def _span(node: ast.AST) -> tuple[int, int]:
    """0-based [start, end) line span of a top-level definition, decorators included."""
    decorators = getattr(node, "decorator_list", [])
    start = min([node.lineno] + [d.lineno for d in decorators]) - 1
    return start, node.end_lineno


def _apply_by_function(source: str, block: Block) -> str | None:
    try:
        search_tree, replace_tree = ast.parse(block.search), ast.parse(block.replace)
        parent_tree = ast.parse(source)
    except SyntaxError:
        return None
    search_defs, _ = _top_level(search_tree)
    replace_defs, replace_imports = _top_level(replace_tree)
    parent_defs, parent_imports = _top_level(parent_tree)
    if not search_defs:
        return None
    lines = source.split("\n")
    replace_lines = block.replace.split("\n")

    def text_of(node: ast.AST) -> list[str]:
        start, end = _span(node)
        return replace_lines[start:end]

    # Edit from the bottom up so earlier spans stay valid.
    edits: list[tuple[int, int, list[str]]] = []
    for fname, node in parent_defs.items():
        if fname in replace_defs:
            edits.append((*_span(node), text_of(replace_defs[fname])))
        elif fname in search_defs:
            edits.append((*_span(node), []))
    new_defs = [n for name, n in replace_defs.items() if name not in parent_defs]
    if new_defs:
        # New helpers go before the first function the block touches, so they read top-down.
        touched = [_span(parent_defs[n])[0] for n in replace_defs if n in parent_defs]
        at = min(touched) if touched else len(lines)
        added = [line for node in new_defs for line in text_of(node) + ["", ""]]
        edits.append((at, at, added))
    if not edits:
        return None
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[start:end] = new
    child = "\n".join(lines)
    return _add_imports(child, [ast.get_source_segment(block.replace, n) for n in replace_imports], parent_imports)


def _add_imports(source: str, statements: list[str], existing: list[ast.stmt]) -> str:
    have = {ast.unparse(n) for n in existing}
    missing = [s for s in statements if s and ast.unparse(ast.parse(s).body[0]) not in have]
    if not missing:
        return source
    lines = source.split("\n")
    at = max((n.end_lineno for n in existing), default=_docstring_end(source))
    lines[at:at] = missing
    return "\n".join(lines)


def _docstring_end(source: str) -> int:
    tree = ast.parse(source)
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(getattr(tree.body[0], "value", None),
                                                                       ast.Constant):
        return tree.body[0].end_lineno
    return 0


MATCHERS = (("exact", _apply_exact), ("whitespace", _apply_whitespace), ("function", _apply_by_function))


def _closest_region(source: str, search: str, context: int = 2) -> tuple[str, str]:
    """Where in ``source`` the lines nearest ``search`` are (one line), and those lines with ``context`` around.

    Windows of the SEARCH's length are scored line by line (mean similarity of aligned,
    stripped lines), so one changed value in a line costs little and a shifted block a lot.
    """
    parent = source.split("\n")
    want = [line.strip() for line in search.strip().split("\n")]
    size = max(1, len(want))
    stripped = [line.strip() for line in parent]
    best, best_at = -1.0, 0
    for start in range(max(1, len(parent) - size + 1)):
        window = stripped[start : start + size]
        score = sum(difflib.SequenceMatcher(None, a, b).ratio() for a, b in zip(window, want, strict=False)) / size
        if score > best:
            best, best_at = score, start
    first = parent[best_at].strip() if parent else ""
    where = f"lines {best_at + 1}-{best_at + size} ({first[:60]!r}, similarity {best:.2f})"
    return where, "\n".join(parent[max(0, best_at - context) : best_at + size + context])


def apply_diff(parent_source: str, diff: Diff, partial: bool = False) -> Applied:
    """Apply ``diff`` to ``parent_source`` and check the child (see module docstring).

    With ``partial``, a block that does not match is skipped (and listed in ``skipped``)
    as long as another one applies.

    Raises:
        DiffError: naming the block that does not match and the parent's closest region,
            or why the child is rejected.
    """
    if diff.rewrite is not None:
        result = Applied(diff.rewrite, ["rewrite"])
    else:
        result = Applied(parent_source)
        first_error: DiffError | None = None
        for number, block in enumerate(diff.blocks, 1):
            try:
                _apply_block(result, number, block)
            except DiffError as exc:
                if not partial:
                    raise
                first_error = first_error or exc
                result.skipped.append(str(exc))
        if first_error is not None and len(result.skipped) == len(diff.blocks):
            raise first_error
    _check_child(result)
    return result


def _apply_block(result: Applied, number: int, block: Block) -> None:
    for level, matcher in MATCHERS:
        try:
            child = matcher(result.source, block)
        except _Ambiguous as exc:
            raise DiffError(f"block {number} (diff line {block.line}): SEARCH text matches {exc.count} places "
                            f"in the parent; include more lines to say which") from None
        if child is not None:
            result.source = child
            result.match_levels.append(level)
            return
    where, text = _closest_region(result.source, block.search)
    raise DiffError(f"block {number} (diff line {block.line}): SEARCH text not found in the parent; closest region: "
                    f"{where}", closest=text)


def undefined_names(source: str) -> set[str]:
    """Global names the code reads but neither defines, imports nor gets from builtins."""
    import builtins

    table = symtable.symtable(source, "<child>", "exec")
    module_names = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    known = module_names | set(dir(builtins)) | {"__file__", "__name__", "__doc__"}
    missing: set[str] = set()

    def visit(scope: symtable.SymbolTable) -> None:
        for sym in scope.get_symbols():
            global_read = sym.is_referenced() and (sym.is_global() or scope.get_type() == "module")
            if global_read and sym.get_name() not in known:
                missing.add(sym.get_name())
        for child in scope.get_children():
            visit(child)

    visit(table)
    return missing


def _check_child(result: Applied) -> None:
    try:
        compile(result.source, "<child>", "exec")
    except SyntaxError as exc:
        raise DiffError(f"child does not compile: line {exc.lineno}: {exc.msg}") from None
    missing = undefined_names(result.source)
    if missing and missing <= STDLIB_IMPORTS.keys():
        statements = [STDLIB_IMPORTS[name] for name in sorted(missing)]
        tree = ast.parse(result.source)
        result.source = _add_imports(result.source, statements, _top_level(tree)[1])
        result.repairs.extend(f"added '{s}'" for s in statements)
    elif missing:
        raise DiffError(f"child uses undefined names: {', '.join(sorted(missing))}")
    try:
        check_source(Candidate(name="child", source=result.source))
    except ContractError as exc:
        raise DiffError(str(exc)) from None


def make_child(parent: Candidate, diff_text: str, name: str | None = None, partial: bool = False
               ) -> tuple[Candidate, Applied]:
    """Parse and apply ``diff_text`` to ``parent``; the child records parent, diff, name and description."""
    try:
        with SOURCE_LOCK:
            diff = parse_diff(diff_text)
            applied = apply_diff(parent.source, diff, partial)
    except (RecursionError, MemoryError):  # the parser's own limits, reached by deeply nested code
        raise DiffError("the diff or its child is nested too deeply to parse") from None
    child = Candidate(
        name=name or diff.name or f"{parent.name}_child",
        source=applied.source if applied.source.endswith("\n") else applied.source + "\n",
        description=diff.description or "",
        origin="diff",
        parent_ids=(parent.id,),
        diff=diff_text,
    )
    return child, applied
