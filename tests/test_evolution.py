"""The evolution loop, its operators, and the LLM operator against a loopback server."""

import json
import random
from pathlib import Path

import pytest
import yaml

from harness.candidate import baseline, from_file, from_source
from harness.cli import main
from harness.evolution import ConfigError, Evolution, EvolutionError, load_config
from harness.knobs import bake, declared_knobs, find_literals
from harness.llm.scripted_server import ScriptedChatServer, knob_tweak
from harness.operators import Crossover, KnobPerturbation, OperatorError
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
FAST = str(ROOT / "candidates" / "vectorized_greedy.py")
BASELINE = str(ROOT / "candidates" / "deepseek_baseline.py")


def write_config(tmp_path, **overrides) -> Path:
    config = {
        "name": "t",
        "parents": [BASELINE, FAST],
        "suite": "smoke",
        "seed": 3,
        "islands": 2,
        "children_per_island": 2,
        "max_evaluations": 4,
        "migration_interval": 1,
        "features": {"gpu_balancedness": [0.74, 0.745, 0.75], "oracle_gpu_balancedness": [0.79, 0.8]},
        "operators": {"diff_library": {"weight": 1, "folder": str(ROOT / "diffs" / "seeds")},
                      "knobs": {"weight": 1, "scale": 0.5}, "crossover": {"weight": 1}},
        "jobs": 2,
        "out": str(tmp_path / "out"),
    } | overrides
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_declared_knobs_are_read_without_running_the_code_and_baked():
    source = "STEPS = 3\nNOISE = 0.1\nKNOBS = {'STEPS': ('int', 1, 9), 'NOISE': ('float', 0.0, 0.5, 'log')}\n"
    knobs = declared_knobs(source)
    assert [(k.name, k.kind, k.low, k.high, k.log, k.default) for k in knobs] == [
        ("STEPS", "int", 1.0, 9.0, False, 3), ("NOISE", "float", 0.0, 0.5, True, 0.1)]
    assert bake(source, knobs, {"STEPS": 7, "NOISE": 0.25}).startswith("STEPS = 7\nNOISE = 0.25\n")


def test_literals_become_knobs_except_zero_and_one():
    source = "def f(x):\n    return x * 0 + 1 + 2.5 * x + 40\n"
    knobs = find_literals(source)
    assert [k.default for k in knobs] == [2.5, 40]
    assert "x * 0 + 1 + 3.0 * x + 41" in bake(source, knobs, {knobs[0].name: 3.0, knobs[1].name: 41})


def test_knob_operator_and_crossover_make_valid_children():
    rng = random.Random(0)
    fast, base = from_file(FAST), baseline()
    child = KnobPerturbation(scale=0.5).propose([fast], rng)
    assert child.source != fast.source and child.parent_ids == (fast.id,) and child.origin == "knobs"
    crossed = Crossover().propose([fast, base], rng)
    assert crossed.parent_ids == (fast.id, base.id) and crossed.origin == "crossover"
    with pytest.raises(OperatorError, match="two different parents"):
        Crossover().propose([fast, fast], rng)


def test_knob_perturbation_moves_an_int_knob_at_its_bound_inward():
    for default, moved in ((0, 1), (1, 0)):
        parent = from_source(f"FLAG = {default}\nKNOBS = {{'FLAG': ('int', 0, 1)}}\n", name="p")
        for seed in range(20):
            child = KnobPerturbation(scale=0.01).propose([parent], random.Random(seed))
            assert f"FLAG = {moved}" in child.source


def test_bad_config_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(write_config(tmp_path, colour="blue"))
    with pytest.raises(ConfigError, match="unknown operator 'teleport'"):
        load_config(write_config(tmp_path, operators={"teleport": {"weight": 1}}))
    with pytest.raises(ConfigError, match="unknown suite"):
        load_config(write_config(tmp_path, suite="nope"))


@pytest.mark.parametrize("override, message", [
    ({"islands": "two"}, "islands must be int, got str 'two'"),
    ({"jobs": 1.5}, "jobs must be int, got float"),
    ({"private": "yes"}, "private must be bool"),
    ({"max_evaluations": 0}, "max_evaluations must be positive"),
    ({"timeout_s": -1}, "timeout_s must be positive"),
    ({"max_seconds": "soon"}, "max_seconds must be float or null"),
    ({"features": {"gpu_balancedness": "high"}}, "features.gpu_balancedness must be a list"),
    ({"operators": {"knobs": 3}}, "operators.knobs must be a mapping"),
    ({"operators": {"knobs": {"wieght": 5}}}, "operator 'knobs': unknown option 'wieght'; known: scale, count"),
    ({"operators": {"knobs": {"scale": "big"}}}, "operator 'knobs': option 'scale' must be float"),
    ({"operators": {"diff_library": {"weight": 1}}}, "operator 'diff_library' needs option 'folder'"),
    ({"parents": [1, 2]}, "parents must be a list of candidate files"),
    ({"name": "../../x"}, "name '../../x' must be a plain folder name"),
    ({"name": "/etc"}, "must be a plain folder name"),
])
def test_a_wrong_typed_config_value_is_refused_before_anything_is_written(tmp_path, override, message):
    db = tmp_path / "h.db"
    path = write_config(tmp_path, **override)
    assert main(["evolve", "--config", str(path), "--db", f"sqlite:///{db}", "--quiet"]) == 2
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    assert not db.exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_seeded_evolve_beats_baseline_on_default_suite_and_repeats_its_lineage(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/h.db")
    config = load_config(write_config(tmp_path, suite="default", max_evaluations=6,
                                      features={"gpu_balancedness": [0.79, 0.7935, 0.794]}))
    first = Evolution(config, store)
    best = first.run()
    baseline_fitness = first.metrics[baseline().id]["gpu_balancedness"]
    assert best.fitness > baseline_fitness
    assert first.evaluations == 6
    out = Path(config.out) / "t"
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage[0]["id"] == best.candidate_id and lineage[-1]["parents"] == []
    assert (out / "best.py").read_text() == store.get_candidate(best.candidate_id).source
    assert (out / "progress.png").stat().st_size > 10_000
    events = (out / "events.jsonl").read_text()

    config.out = str(tmp_path / "again")
    again = Evolution(config, store)
    assert again.run().candidate_id == best.candidate_id
    assert json.loads((Path(config.out) / "t" / "lineage.json").read_text()) == lineage
    assert (Path(config.out) / "t" / "events.jsonl").read_text() == events


@pytest.mark.slow
def test_resume_continues_from_saved_state(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/h.db")
    config = load_config(write_config(tmp_path, max_evaluations=2))
    first = Evolution(config, store)
    first.run()
    generations = first.generation
    config.max_evaluations = 4
    resumed = Evolution(config, store)
    resumed.run(resume=True)
    assert resumed.evaluations == 4 and resumed.generation > generations
    assert [h for h in resumed.history[: len(first.history)]] == first.history


ROUNDS = str(ROOT / "candidates" / "rounds_swap.py")
# Real improvements and non-changes of rounds_swap, as a model would write them.
GROUPS_FREE = ("Keep groups free.\n<<<<<<< SEARCH\n# 0: groups free (one placement over every GPU).\n"
               "GROUP_LOCAL = 1\n=======\n# 0: groups free (one placement over every GPU).\nGROUP_LOCAL = 0\n"
               ">>>>>>> REPLACE\n")
UNMATCHED = "<<<<<<< SEARCH\nTHIS_IS_NOT_THERE = 1\n=======\nX = 2\n>>>>>>> REPLACE\n"
ONE_START = "<<<<<<< SEARCH\nSTARTS = 2\n=======\nSTARTS = 1\n>>>>>>> REPLACE\n"
COMMENT_ONLY = "<<<<<<< SEARCH\nSTARTS = 2\n=======\nSTARTS = 2  # two starts\n>>>>>>> REPLACE\n"


def llm_config(url: str, **options) -> dict:
    return {"llm": {"models": [{"model": "scripted", "base_url": url}], "backoff_s": 0.05} | options}


def test_llm_operator_drives_a_short_evolve_run(tmp_path):
    with ScriptedChatServer([{"content": UNMATCHED}, {"content": GROUPS_FREE}]) as server:
        config = load_config(write_config(tmp_path, parents=[ROUNDS], max_evaluations=1, islands=1,
                                          operators=llm_config(server.url)))
        evolution = Evolution(config, Store(f"sqlite:///{tmp_path}/h.db"))
        evolution.run()
    events = [json.loads(line) for line in (Path(config.out) / "t" / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["operator"] == "llm" and e.get("candidate_id")] == ["accepted"]
    assert [e["outcome"] for e in events if e["status"] == "llm call"] == ["unusable", "applied"]
    assert "SEARCH text not found" in server.requests[1]["messages"][-1]["content"]


def scripted_model(body: dict, index: int) -> dict:
    """Each case of the loop test once, then changes that always apply (so the budget fills)."""
    script = [{"status": 429, "retry_after": 1}, {"content": UNMATCHED}, {"content": GROUPS_FREE},
              {"content": "I would balance the load better."}, {"content": None},
              {"content": ONE_START, "delay_s": 2.0}, {"content": COMMENT_ONLY}]
    return script[index] if index < len(script) else knob_tweak(body, index)


def test_the_loop_survives_every_kind_of_answer_overlaps_calls_and_crowns_the_real_improvement(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/h.db"
    with ScriptedChatServer(scripted_model) as server:
        path = write_config(tmp_path, parents=[ROUNDS], max_evaluations=4, islands=1, children_per_island=1,
                            max_concurrent=3, operators=llm_config(server.url))
        assert main(["evolve", "--config", str(path), "--db", db]) == 0
    out = capsys.readouterr().out
    store = Store(db)
    best = store.get_candidate(out.split("(")[1].split(")")[0])
    assert "GROUP_LOCAL = 0" in best.source and best.origin == "llm"
    assert server.max_in_flight >= 2  # calls overlapped
    asks = [r["messages"] for r in server.requests]
    assert any(m[-1]["role"] == "user" and "SEARCH text not found" in m[-1]["content"] for m in asks)
    assert any("no SEARCH/REPLACE block" in m[-1]["content"] for m in asks)  # the prose was answered back
    calls = store.llm_calls_frame("t")
    assert set(calls["outcome"]) >= {"applied", "unusable", "failed"}
    assert calls["prompt_tokens"].notna().any() and calls["prompt"].str.contains("GROUP_LOCAL = 1").any()
    assert (calls["retries"] >= 1).any()  # the 429, retried
    events = [json.loads(line) for line in (tmp_path / "out" / "t" / "events.jsonl").read_text().splitlines()]
    statuses = {e["status"] for e in events}
    assert {"accepted", "duplicate", "llm call"} <= statuses, statuses
    assert sum(e["status"] in ("accepted", "not better", "failed") for e in events) == 4
    assert f"llm: {len(calls)} calls" in out and "prompt +" in out


def test_an_endpoint_that_is_down_stops_the_run_with_one_line_and_a_failing_exit(tmp_path, capsys):
    path = write_config(tmp_path, parents=[ROUNDS], max_evaluations=4, islands=1,
                        operators=llm_config("http://127.0.0.1:9/v1", max_retries=0))
    assert main(["evolve", "--config", str(path), "--db", f"sqlite:///{tmp_path}/h.db"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and "LLM calls in a row failed" in err[0]
    assert "cannot connect to http://127.0.0.1:9/v1" in err[0]


@pytest.mark.slow
def test_population_and_proposals_are_recorded_in_the_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/h.db")
    config = load_config(write_config(tmp_path, max_evaluations=2))
    evolution = Evolution(config, store)
    evolution.run()
    rows = list(store.evolution_events_frame(config.name).itertuples())
    archived = {(r.generation, r.island, r.candidate_id) for r in rows if r.status == "archived"}
    last = evolution.generation
    assert {(i, m.candidate_id) for i, a in enumerate(evolution.archives) for m in a.values()} == {
        (i, c) for g, i, c in archived if g == last}
    assert any(r.operator != "archive" for r in rows)


def hostile(body: dict, index: int) -> dict:
    """Answers 401 echoing a key-shaped value, then a null content, then an empty one."""
    return [{"status": 401, "message": "invalid credentials: Bearer sk-evolve-secret-0123456789"},
            {"content": None}, {"content": ""}][index % 3]


def test_llm_errors_are_rejections_and_the_key_is_written_nowhere(tmp_path, monkeypatch):
    key = "sk-evolve-secret-0123456789"
    monkeypatch.setenv("EPLB_TEST_LLM_KEY", key)
    with ScriptedChatServer(hostile) as server:
        store = Store(f"sqlite:///{tmp_path}/h.db")
        config = load_config(write_config(tmp_path, max_evaluations=1, islands=1, children_per_island=3, operators={
            "llm": {"base_url": server.url, "model": "m", "api_key_env": "EPLB_TEST_LLM_KEY"}}))
        evolution = Evolution(config, store)
        with pytest.raises(EvolutionError, match="LLM calls in a row failed"):
            evolution.run()
    events = [json.loads(line) for line in (Path(config.out) / "t" / "events.jsonl").read_text().splitlines()]
    rejected = [e["reason"] for e in events if e["status"] == "rejected"]
    assert any("HTTP 401: invalid credentials: Bearer [redacted]" in r for r in rejected), rejected
    assert any("content null or empty" in r for r in rejected), rejected
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and not [p for p in files if key.encode() in p.read_bytes()]


@pytest.mark.slow
def test_a_diff_nested_too_deeply_to_parse_is_a_rejected_proposal(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    nested = "x = 1" + "+1" * 200000
    diff = f"<<<<<<< SEARCH\nimport torch\n=======\nimport torch\n{nested}\n>>>>>>> REPLACE\n"
    (library / "deep.txt").write_text(diff)
    config = load_config(write_config(tmp_path, max_evaluations=1, islands=1, children_per_island=2, parents=[BASELINE],
                                      operators={"diff_library": {"folder": str(library)}}))
    # Every proposal is rejected, so the run ends saying so, after recording each rejection.
    with pytest.raises(EvolutionError, match="no child was evaluated; the last proposal was rejected: the diff or its "
                                             "child is nested too deeply to parse"):
        Evolution(config, Store(f"sqlite:///{tmp_path}/h.db")).run()
    events = [json.loads(line) for line in (Path(config.out) / "t" / "events.jsonl").read_text().splitlines()]
    assert {e["reason"] for e in events if e["status"] == "rejected"} == {"the diff or its child is nested too deeply "
                                                                          "to parse"}


@pytest.mark.slow
def test_a_cascade_stops_children_below_their_parent_on_the_cheap_suite(tmp_path):
    parent = tmp_path / "free.py"
    parent.write_text(Path(ROUNDS).read_text().replace("\nGROUP_LOCAL = 1\n", "\nGROUP_LOCAL = 0\n"))
    library = tmp_path / "library"
    library.mkdir()
    (library / "whole.txt").write_text(GROUPS_FREE.replace("= 1", "= X").replace("= 0", "= 1").replace("= X", "= 0"))
    config = load_config(write_config(tmp_path, parents=[str(parent)], suite="quick", max_evaluations=1, islands=1,
                                      children_per_island=1, cascade={"suite": "smoke", "min_ratio_to_parent": 0.98},
                                      operators={"diff_library": {"folder": str(library)}}))
    store = Store(f"sqlite:///{tmp_path}/h.db")
    evolution = Evolution(config, store)
    evolution.run()
    (stopped,) = [json.loads(line) for line in (Path(config.out) / "t" / "events.jsonl").read_text().splitlines()
                  if '"diff_library"' in line]
    assert stopped["status"] == "cascade stopped" and "below 0.98 x the parent's" in stopped["reason"]
    scored = store.evaluations_frame([stopped["candidate_id"]])
    assert set(scored["case_key"]) == {c.key for c in evolution.cascade}  # never scored on the main suite
    assert evolution.evaluations == 1 and stopped["candidate_id"] not in evolution.metrics


def test_a_resumed_llm_run_carries_its_account_and_budget_on(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/h.db"
    priced = {"llm": {"models": [{"model": "scripted", "usd_per_mtok": 1000.0}], "backoff_s": 0.05}}
    with ScriptedChatServer(knob_tweak) as server:
        priced["llm"]["models"][0]["base_url"] = server.url
        path = write_config(tmp_path, parents=[ROUNDS], max_evaluations=2, islands=1, children_per_island=1,
                            operators=priced)
        assert main(["evolve", "--config", str(path), "--db", db]) == 0
        first = Store(db).llm_calls_frame("t")
        spent = float(first["cost_usd"].sum())
        assert len(first) >= 2 and spent > 0
        # Resumed with a budget already spent: no call is made, nothing is evaluated.
        write_config(tmp_path, parents=[ROUNDS], max_evaluations=4, islands=1, children_per_island=1,
                     operators=priced, max_cost_usd=spent)
        capsys.readouterr()
        assert main(["evolve", "--config", str(path), "--db", db, "--resume"]) == 0
        assert "after 2 evaluations" in capsys.readouterr().out
        assert len(server.requests) == len(first)
        # Resumed with room: the run goes on, the account adds up, no call is stored twice.
        write_config(tmp_path, parents=[ROUNDS], max_evaluations=4, islands=1, children_per_island=1,
                     operators=priced)
        assert main(["evolve", "--config", str(path), "--db", db, "--resume"]) == 0
    out = capsys.readouterr().out
    calls = Store(db).llm_calls_frame("t")
    assert "after 4 evaluations" in out and f"llm: {len(calls)} calls" in out
    assert len(calls) == len(server.requests) > len(first)
    assert f"${calls['cost_usd'].sum():.4f}" in out
    events = [json.loads(line) for line in (tmp_path / "out" / "t" / "events.jsonl").read_text().splitlines()]
    assert sum(e["status"] == "llm call" for e in events) == len(calls)
