"""The leaderboard ranks candidates on equal case sets, and shows the published score and locality."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evaluator.suites import SUITES, get_suite
from harness.figures import adrs_score

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "candidates" / "deepseek_baseline.py"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


def test_adrs_score_is_the_published_formula():
    assert adrs_score(0.9, 0.001) == pytest.approx(90 * 0.9 + 5 * 2)  # speed term capped at 2
    assert adrs_score(0.9, 0.004) == pytest.approx(81 + 5 * 0.5)  # no penalty up to 10 ms
    assert adrs_score(0.9, 0.02) == pytest.approx(81 + 5 * 0.1 - 0.4)
    assert adrs_score(0.9, 5.0) == pytest.approx(81 + 5 * 0.0004 - 20)  # penalty capped at 20


def test_cases_that_differ_have_different_names_and_keys():
    cases = [c for suite in SUITES for c in get_suite(suite)]
    by_key = {c.key: c for c in cases}
    by_name = {c.name: c for c in cases}
    assert len(by_key) == len(by_name)  # a name is a key: no two different cases share one
    smoke, default = get_suite("smoke"), get_suite("default")
    assert not {c.name for c in smoke} & {c.name for c in default}  # 2 windows vs 4
    assert smoke[0].name == "zipf,windows=2@deepseek-v3#s0"


@pytest.mark.slow
def test_a_candidate_with_part_of_the_suite_is_listed_apart_not_ranked(tmp_path):
    db = f"sqlite:///{tmp_path}/h.db"
    copy = tmp_path / "baseline_copy.py"
    copy.write_text("# a comment-only copy of the baseline\n" + BASELINE.read_text())
    # The baseline on all 6 smoke cases; the copy only on the 3 (easier) gpt-oss ones.
    first = cli("evaluate", str(BASELINE), "--suite", "smoke", "--no-timing", "--db", db, "--out", str(tmp_path),
                "--quiet")
    assert first.returncode == 0, first.stderr
    second = cli("evaluate", str(copy), "--suite", "smoke", "--preset", "gpt-oss-120b", "--no-timing", "--db", db,
                 "--out", str(tmp_path), "--quiet")
    assert second.returncode == 0, second.stderr
    board = cli("leaderboard", "--suite", "smoke", "--db", db, "--format", "csv")
    assert board.returncode == 0, board.stderr
    from io import StringIO

    table = pd.read_csv(StringIO(board.stdout)).set_index("candidate")
    assert table.loc["deepseek_baseline", "rank"] == 1 and table.loc["deepseek_baseline", "coverage"] == "6/6"
    assert pd.isna(table.loc["baseline_copy", "rank"]) and table.loc["baseline_copy", "coverage"] == "3/6"
    # Locality over the cases with expert groups (deepseek-v3's 8): the baseline keeps them whole.
    assert table.loc["deepseek_baseline", "group_node_spread"] == 1.0
    assert pd.isna(table.loc["baseline_copy", "group_node_spread"])  # gpt-oss has no groups
    # Its mean over 3 easy cases is higher: ranking on it would put the copy first.
    assert table.loc["baseline_copy", "gpu_balancedness"] > table.loc["deepseek_baseline", "gpu_balancedness"]
    md = cli("leaderboard", "--suite", "smoke", "--db", db)
    ranked, _, apart = md.stdout.partition("Not ranked")
    assert "deepseek_baseline" in ranked and "baseline_copy" not in ranked and "baseline_copy" in apart
    assert "group_node_spread" in ranked and "adrs_score" in ranked
    by_adrs = cli("leaderboard", "--suite", "smoke", "--db", db, "--rank-by", "adrs_score")
    assert by_adrs.returncode == 0, by_adrs.stderr


def test_every_ranked_figure_is_declared_once_with_its_direction():
    from harness.figures import FIGURES, Figure, declare
    from harness.leaderboard import leaderboard

    with pytest.raises(ValueError, match="declared twice"):
        declare(Figure("gpu_balancedness", "again"))
    with pytest.raises(ValueError, match="derive function"):
        Figure("x", "derived without a function", pooled="derived")
    per_case = pd.DataFrame([
        {"candidate_id": cid, "candidate": cid, "origin": "file", "case_key": key, "family": "zipf", "preset": "p",
         "ok": True, "gpu_balancedness": bal, "group_node_spread": spread, "runtime_ms": ms, "speedup": 1.0}
        for cid, bal, spread, ms in [("a", 0.9, 3.0, 10.0), ("b", 0.8, 1.0, 5.0)] for key in ("k1", "k2")])
    assert leaderboard(per_case, "gpu_balancedness")["candidate"].tolist() == ["a", "b"]
    # Lower spread and lower runtime are better: the declaration, not the caller, says so.
    assert not FIGURES["group_node_spread"].higher_is_better
    assert leaderboard(per_case, "group_node_spread")["candidate"].tolist() == ["b", "a"]
    assert leaderboard(per_case, "runtime_ms")["candidate"].tolist() == ["b", "a"]
    with pytest.raises(ValueError, match="cannot rank by 'vibes'"):
        leaderboard(per_case, "vibes")


def test_evolve_fitness_is_a_declared_figure(tmp_path):
    from harness.evolution import ConfigError, load_config

    base = "name: f\nparents: [candidates/deepseek_baseline.py]\noperators: {knobs: {}}\nsuite: smoke\n"
    (good := tmp_path / "good.yaml").write_text(base + "fitness: oracle_gpu_balancedness\n")
    assert load_config(good).fitness == "oracle_gpu_balancedness"
    (bad := tmp_path / "bad.yaml").write_text(base + "fitness: vibes\n")
    with pytest.raises(ConfigError, match="unknown figure 'vibes'"):
        load_config(bad)


def test_a_figure_declared_once_is_a_column_and_a_rank_by_choice(tmp_path):
    """docs/extending.md's example: a derived figure is one declaration in harness/figures.py."""
    from evaluator.suites import Case
    from harness.candidate import from_file
    from harness.figures import FIGURES, Figure, declare
    from harness.leaderboard import case_results, leaderboard
    from harness.runner import RunConfig, evaluate
    from harness.store import Store

    store = Store(f"sqlite:///{tmp_path}/h.db")
    cases = [Case("zipf", "mixtral-8x7b", 0, windows=2), Case("hotspot", "mixtral-8x7b", 0, windows=2)]
    report = evaluate(store, [from_file(ROOT / "candidates" / "vectorized_greedy.py")], cases,
                      RunConfig(quiet=True, time_runs=False))
    declare(Figure("next_window_retention", "t -> t+1 GPU balancedness / same-window GPU balancedness",
                   pooled="derived", fmt=".4f", summary=True,
                   derive=lambda f: f["gpu_balancedness"] / f["oracle_gpu_balancedness"]))
    try:
        table = leaderboard(case_results(store, [c.key for c in cases], report.candidate_ids),
                            rank_by="next_window_retention", case_keys=[c.key for c in cases])
    finally:
        del FIGURES["next_window_retention"]
    expected = table["gpu_balancedness"] / table["oracle_gpu_balancedness"]
    assert table["next_window_retention"].tolist() == pytest.approx(expected.tolist())
    assert table["next_window_retention"].is_monotonic_decreasing and table["rank"].tolist() == [1, 2]
