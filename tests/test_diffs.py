"""The SEARCH/REPLACE diff engine: each match level, the seeds, and malformed diffs."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evaluator.suites import get_suite
from harness.candidate import baseline, from_source, load_module
from harness.diffs import DiffError, apply_diff, make_child, parse_diff, undefined_names
from harness.leaderboard import case_results, leaderboard
from harness.runner import RunConfig, evaluate
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "diffs" / "seeds").glob("*.txt"))

PARENT = textwrap.dedent('''\
    import torch


    def helper(x):
        return x + 1


    def balanced_packing(weight, num_packs):
        total = helper(0)
        for i in range(3):
            total += i
        return weight, total


    def replicate_experts(weight, num_phy):
        return weight
    ''')


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_exact_match_replaces_the_text():
    diff = parse_diff(block("        total += i", "        total += 2 * i"))
    applied = apply_diff(PARENT, diff)
    assert applied.match_levels == ["exact"]
    assert "total += 2 * i" in applied.source


def test_whitespace_tolerant_match_reindents_the_replacement():
    search = "for i in range(3):\n    total += i"  # written without the function's indentation
    replace = "for i in range(4):\n    total -= i"
    applied = apply_diff(PARENT, parse_diff(block(search, replace)))
    assert applied.match_levels == ["whitespace"]
    assert "    for i in range(4):\n        total -= i" in applied.source
    compile(applied.source, "child", "exec")


def test_function_match_replaces_by_name_and_adds_helpers_and_imports():
    search = "def replicate_experts(weight, num_phy):\n    return weight  # an older parent's text"
    replace = textwrap.dedent('''\
        import heapq


        def _new_helper(w):
            return heapq.nlargest(1, [w])


        def replicate_experts(weight, num_phy):
            return _new_helper(weight)''')
    applied = apply_diff(PARENT, parse_diff(block(search, replace)))
    assert applied.match_levels == ["function"]
    assert "import heapq" in applied.source
    assert applied.source.index("def _new_helper") < applied.source.index("def replicate_experts")
    assert applied.source.count("def replicate_experts") == 1
    assert "def balanced_packing" in applied.source


def test_function_only_in_search_is_removed():
    search = "def helper(x):\n    return x - 1\n\ndef balanced_packing(weight, num_packs):\n    pass"
    replace = "def balanced_packing(weight, num_packs):\n    return weight, 0"
    applied = apply_diff(PARENT, parse_diff(block(search, replace)))
    assert "def helper" not in applied.source and "return weight, 0" in applied.source


def test_stdlib_name_used_without_import_is_repaired_and_recorded():
    search = "def replicate_experts(weight, num_phy):\n    return weight"
    replace = "def replicate_experts(weight, num_phy):\n    counts = defaultdict(int)\n    return weight"
    applied = apply_diff(PARENT, parse_diff(block(search, replace)))
    assert applied.repairs == ["added 'from collections import defaultdict'"]
    assert not undefined_names(applied.source)


def test_other_undefined_names_reject_the_child():
    search = "def replicate_experts(weight, num_phy):\n    return weight"
    replace = "def replicate_experts(weight, num_phy):\n    return not_defined_anywhere(weight)"
    with pytest.raises(DiffError, match="undefined names: not_defined_anywhere"):
        apply_diff(PARENT, parse_diff(block(search, replace)))


def test_child_that_breaks_the_contract_is_rejected():
    with pytest.raises(DiffError, match="missing required function replicate_experts"):
        apply_diff(PARENT, parse_diff(block("def replicate_experts(weight, num_phy):\n    return weight", "")))


def test_full_file_rewrite_is_accepted():
    rewrite = "```python\n" + PARENT.replace("x + 1", "x + 2") + "```\n"
    applied = apply_diff(PARENT, parse_diff(rewrite))
    assert applied.match_levels == ["rewrite"] and "x + 2" in applied.source


@pytest.mark.parametrize(
    "text, message",
    [
        ("<<<<<<< SEARCH\nfoo\n>>>>>>> REPLACE\n", "missing '=======' separator"),
        ("<<<<<<< SEARCH\nfoo\n=======\nbar\n", "no closing '>>>>>>> REPLACE'"),
        ("<<<<<<< SEARCH\nfoo\n=======\nbar\n<<<<<<< SEARCH\n", "no closing"),
        ("foo\n=======\nbar\n>>>>>>> REPLACE\n", "outside a SEARCH/REPLACE block"),
        ("<DIFF>\n<<<<<<< SEARCH\nfoo\n=======\nbar\n>>>>>>> REPLACE\n", "not closed by </DIFF>"),
    ],
)
def test_malformed_diffs_are_refused(text, message):
    with pytest.raises(DiffError, match=message):
        parse_diff(text)


def test_search_not_found_names_the_block_and_closest_region():
    missing = block("    total = helper(1)\n    for j in range(3):", "pass")
    diff = parse_diff(block("return x + 1", "return x + 3") + missing)
    with pytest.raises(DiffError, match=r"block 2 \(diff line 6\).*closest region: lines 9-10 .*total = helper"):
        apply_diff(PARENT, diff)


def test_cli_refuses_bad_diff_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.diff"
    bad.write_text(block("this text is nowhere", "x = 1"))
    child = tmp_path / "child.py"
    result = subprocess.run(
        [sys.executable, "-m", "harness", "apply-diff", str(ROOT / "candidates" / "deepseek_baseline.py"), str(bad),
         "-o", str(child), "--db", f"sqlite:///{tmp_path}/h.db"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert "SEARCH text not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not child.exists() and not (tmp_path / "h.db").exists()


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name)
def test_seed_applies_to_the_baseline_by_function(seed):
    child, applied = make_child(baseline(), seed.read_text())
    assert child.name in {"waterfill_and_light_pair_refine", "pool_split_packing_and_heap_replication"}
    assert set(applied.match_levels) == {"function"}
    assert child.parent_ids == (baseline().id,) and child.diff == seed.read_text() and child.description
    module = load_module(child)
    assert callable(module.balanced_packing) and callable(module.replicate_experts)
    if "waterfill" in child.name:
        assert applied.repairs == ["added 'from collections import defaultdict'"]
        assert callable(module.balanced_packing_diverse)


@pytest.mark.slow
def test_seed_children_pass_validation_on_default_suite_and_show_by_name(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/h.db")
    children = [make_child(baseline(), seed.read_text())[0] for seed in SEEDS]
    cases = get_suite("default")
    evaluate(store, children, cases, RunConfig(jobs=2, quiet=True, time_runs=False))
    per_case = case_results(store, [c.key for c in cases])
    assert per_case["ok"].all(), per_case.loc[~per_case["ok"], "reason"].tolist()
    table = leaderboard(per_case)
    names = set(table["candidate"])
    assert {"waterfill_and_light_pair_refine", "pool_split_packing_and_heap_replication"} <= names
    assert set(table.loc[table["candidate"] != "deepseek_baseline", "origin"]) == {"diff"}


def test_from_source_children_round_trip_through_the_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/h.db")
    child, _ = make_child(baseline(), SEEDS[0].read_text())
    store.add_candidate(child)
    assert store.get_candidate(child.id) == child
    assert from_source(child.source).id == child.id
