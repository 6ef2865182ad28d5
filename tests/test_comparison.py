"""Paired comparison over seeds: verdicts, intervals, and the compare command."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evaluator.suites import Case, get_suite
from harness.comparison import case_group, compare_table, reseeded

ROOT = Path(__file__).resolve().parent.parent


def _differences(groups: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"group": g, "seed": s, "case_key": f"{g}{s}", "next_window": d, "same_window": 0.0, "failed": False}
            for g, diffs in groups.items() for s, d in enumerate(diffs)]
    return pd.DataFrame(rows)


def test_verdict_needs_the_interval_to_exclude_zero():
    table = compare_table(_differences({
        "up": [0.010, 0.012, 0.011],
        "down": [-0.010, -0.012, -0.011],
        "noise": [0.010, -0.010, 0.001],
        "same": [0.0, 0.0, 0.0],
    })).set_index("case")
    assert table.loc["up", "next_window_verdict"] == "better"
    assert table.loc["down", "next_window_verdict"] == "worse"
    assert table.loc["noise", "next_window_verdict"] == "indistinguishable"
    assert table.loc["same", "next_window_verdict"] == "equal"
    assert (table["same_window_verdict"] == "equal").all()


def test_interval_is_the_student_t_interval_of_the_mean():
    diffs = [0.004, -0.001, 0.003, 0.002]
    row = compare_table(_differences({"g": diffs}), confidence=0.9).iloc[0]
    half = stats.t.ppf(0.95, 3) * np.std(diffs, ddof=1) / 2
    assert row["next_window_diff"] == pytest.approx(np.mean(diffs))
    assert row["next_window_low"] == pytest.approx(np.mean(diffs) - half)
    assert row["next_window_high"] == pytest.approx(np.mean(diffs) + half)


def test_failed_seeds_are_counted_and_left_out():
    diffs = _differences({"g": [0.01, 0.011, 0.012]})
    diffs.loc[1, ["next_window", "failed"]] = [np.nan, True]
    row = compare_table(diffs).iloc[0]
    assert row["seeds"] == 2 and row["failed"] == 1
    assert row["next_window_diff"] == pytest.approx(0.011)


def test_reseeded_repeats_every_case_once_per_seed():
    cases = get_suite("smoke")
    again = reseeded(cases, [0, 1, 2])
    assert len(again) == 3 * len(cases) and len({c.key for c in again}) == len(again)
    assert {c.seed for c in again} == {0, 1, 2}
    assert {case_group(c) for c in again} == {case_group(c) for c in cases}
    assert case_group(Case("zipf", "deepseek-v3", 7)) == "zipf@deepseek-v3"


def _compare(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "harness", "compare", *args, "--suite", "smoke",
                           "--db", f"sqlite:///{tmp_path}/h.db", "--out", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_baseline_compared_with_itself_is_equal_on_every_case(tmp_path):
    result = _compare(tmp_path, "candidates/deepseek_baseline.py", "--seeds", "0-1")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert len(table) == len(get_suite("smoke")) and (table["seeds"] == 2).all()
    assert (table["next_window_verdict"] == "equal").all() and (table["same_window_verdict"] == "equal").all()
    assert "6 equal" in result.stdout


@pytest.mark.slow
def test_compare_against_another_candidate_pairs_the_same_histories(tmp_path):
    result = _compare(tmp_path, "candidates/vectorized_greedy.py", "--against", "candidates/deepseek_baseline.py",
                      "--seeds", "3,4", "--preset", "gpt-oss-120b")
    assert result.returncode == 0, result.stderr
    diffs = pd.read_csv(tmp_path / "out" / "differences.csv")
    assert sorted(diffs["seed"].unique()) == [3, 4] and not diffs["failed"].any()
    assert len(diffs) == 2 * 3 and diffs["group"].str.endswith("@gpt-oss-120b").all()
    # Same counts and packing rule as the baseline: equal same-window balance up to ties and duplicate swaps.
    assert diffs["same_window"].abs().max() < 0.01
    # Locality of both sides: GPT-OSS has no expert groups, so there is none to show.
    table = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert table["group_node_spread"].isna().all() and table["reference_group_node_spread"].isna().all()
    assert "no groups" in result.stdout


def test_bad_seed_list_is_one_line_and_exit_2(tmp_path):
    result = _compare(tmp_path, "candidates/deepseek_baseline.py", "--seeds", "a-b")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--seeds" in result.stderr


def test_one_seed_or_no_seed_gives_no_verdict_beyond_equal():
    diffs = _differences({"one": [0.01], "zero": [0.0], "gone": [0.01, 0.02]})
    diffs.loc[diffs["group"] == "gone", "failed"] = True
    table = compare_table(diffs).set_index("case")
    assert table.loc["one", "next_window_verdict"] == "one seed" and np.isnan(table.loc["one", "next_window_low"])
    assert table.loc["zero", "next_window_verdict"] == "equal"
    assert table.loc["gone", "next_window_verdict"] == "no data" and table.loc["gone", "failed"] == 2
