"""One conformance suite for the results store, run on every backend: SQLite and a real PostgreSQL server."""

import itertools

import pytest
from postgres import find_pg_bin, postgres_server
from sqlalchemy import create_engine, text

from harness.candidate import Candidate
from harness.store import ResultStore, Store

_databases = itertools.count()


@pytest.fixture(scope="module")
def postgres_url():
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL binaries not installed (.ci/run installs them)")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/h.db"
    server = request.getfixturevalue("postgres_url")
    name = f"conformance_{next(_databases)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


def _case(key: str) -> dict:
    return {"case": f"zipf@p#{key}", "case_key": key, "family": "zipf", "preset": "p"}


CHILD = Candidate(name="child", source="X = 1\n", origin="diff", parent_ids=("abc",), diff="<<<", description="d")


def test_a_candidate_is_stored_once_and_read_back_whole(store_url):
    store = Store(store_url)
    assert isinstance(store, ResultStore)
    assert store.add_candidate(CHILD) == store.add_candidate(CHILD) == CHILD.id
    back = store.get_candidate(CHILD.id)
    assert (back.name, back.source, back.origin, back.parent_ids, back.diff, back.description) == (
        "child", "X = 1\n", "diff", ("abc",), "<<<", "d")
    with pytest.raises(KeyError):
        store.get_candidate("nope")


def test_an_evaluation_is_unique_per_candidate_and_case_and_filters_by_both(store_url):
    store = Store(store_url)
    store.add_candidate(CHILD)
    run = store.start_run("test", "smoke")
    metrics = {"gpu_balancedness": 0.8, "gpu_balancedness_per_layer": [0.7, 0.9], "group_node_spread": None}
    assert store.add_evaluation(run, CHILD.id, _case("k1"), metrics)
    assert not store.add_evaluation(run, CHILD.id, _case("k1"), {"gpu_balancedness": 0.1})  # kept, not doubled
    assert store.add_evaluation(run, CHILD.id, _case("k2"), None, "timeout", "took 1 s", limits={"timeout_s": 1})
    store.end_run(run)
    assert store.evaluated_case_keys(CHILD.id) == {"k1", "k2"}
    frame = store.evaluations_frame([CHILD.id], ["k1"])
    assert len(frame) == 1 and frame.loc[0, "gpu_balancedness"] == 0.8
    assert "gpu_balancedness_per_layer" not in frame  # per-layer lists stay in the row, not the frame
    assert store.evaluations_frame(["other"]).empty
    # A limit failure holds for its limits only; under others it is dropped and re-run.
    assert store.drop_limit_failures(CHILD.id, {"timeout_s": 1}) == 0
    assert store.drop_limit_failures(CHILD.id, {"timeout_s": 60}) == 1
    assert store.evaluated_case_keys(CHILD.id) == {"k1"}
    store.delete_evaluations(CHILD.id, ["k1"])
    assert store.evaluated_case_keys(CHILD.id) == set()


def test_timings_are_per_run_and_a_failed_timing_has_its_kind(store_url):
    store = Store(store_url)
    store.add_candidate(CHILD)
    first, second = store.start_run("a", None), store.start_run("b", None)
    store.add_timing(first, CHILD.id, "k1", {"median_s": 0.5, "iqr_s": 0.1})
    store.add_timing(second, CHILD.id, "k1", None, "invalid", "stale answers")
    frame = store.timings_frame([CHILD.id]).sort_values("run_id")
    assert frame["median_s"].tolist()[0] == 0.5 and frame["iqr_s"].tolist()[0] == 0.1
    assert frame["timing_failure"].isna().tolist() == [True, False] and frame["timing_failure"].iloc[1] == "invalid"


def test_secret_is_made_once_and_survives_reopening(store_url):
    secret = Store(store_url).suite_secret()
    assert len(secret) == 32 and Store(store_url).suite_secret() == secret


def test_evolution_events_are_read_back_in_order_with_keys_redacted(store_url):
    store = Store(store_url)
    store.add_candidate(CHILD)
    store.add_evolution_events("e", 1, [
        {"island": 0, "operator": "llm", "status": "rejected", "reason": "401: Authorization: Bearer sk-abc123def456"},
        {"island": 1, "operator": "knobs", "status": "accepted", "candidate_id": CHILD.id, "fitness": 0.8},
    ])
    events = store.evolution_events_frame("e")
    assert events["operator"].tolist() == ["llm", "knobs"] and events["fitness"].tolist()[1] == 0.8
    assert "sk-abc123def456" not in events["reason"].tolist()[0]
    assert store.evolution_events_frame("other").empty


def test_events_of_later_generations_are_deleted_for_one_evolution_only(store_url):
    store = Store(store_url)
    for evolution in ("e", "f"):
        for generation in (1, 2, 3):
            store.add_evolution_events(evolution, generation, [{"island": 0, "operator": "knobs", "status": "x"}])
    store.delete_evolution_events("e", after_generation=1)
    assert store.evolution_events_frame("e")["generation"].tolist() == [1]
    assert store.evolution_events_frame("f")["generation"].tolist() == [1, 2, 3]


def test_replays_are_read_back_per_run_and_candidate_with_their_records(store_url):
    store = Store(store_url)
    store.add_candidate(CHILD)
    run = store.start_run("replay", None)
    records = [{"window": 1, "rebalanced": True, "gpu_balancedness": 0.9, "copies_transferred": 3}]
    store.add_replay(run, CHILD.id, "trace:t.npy@mixtral-8x7b", {"every": 2, "estimator": "last"}, records)
    replays = store.replays_frame()
    assert replays[["run_id", "case", "candidate_id", "candidate"]].values.tolist() == [
        [run, "trace:t.npy@mixtral-8x7b", CHILD.id, CHILD.name]]
    assert replays["records"][0] == records and replays["policy"][0] == {"every": 2, "estimator": "last"}


def test_llm_calls_are_read_back_in_order_with_every_field_and_keys_redacted(store_url):
    store = Store(store_url)
    call = {"model": "m", "base_url": "http://127.0.0.1:8000/v1", "temperature": 0.7, "parent_id": CHILD.id,
            "child_id": None, "attempt": 2, "outcome": "unusable", "reason": "no block", "prompt_tokens": 1234,
            "completion_tokens": 56, "latency_s": 5.25, "retries": 1, "cost_usd": 0.0012,
            "prompt": '[{"role": "user", "content": "key sk-abc123def456"}]', "answer": "prose"}
    store.add_llm_calls("e", [call, call | {"outcome": "applied", "child_id": CHILD.id, "attempt": 3}])
    calls = store.llm_calls_frame("e")
    assert calls["outcome"].tolist() == ["unusable", "applied"] and calls["attempt"].tolist() == [2, 3]
    first = calls.iloc[0]
    assert {k: first[k] for k in ("model", "prompt_tokens", "completion_tokens", "retries", "answer")} == {
        "model": "m", "prompt_tokens": 1234, "completion_tokens": 56, "retries": 1, "answer": "prose"}
    assert first["latency_s"] == 5.25 and first["cost_usd"] == 0.0012
    assert "sk-abc123def456" not in first["prompt"] and "[redacted]" in first["prompt"]
    assert store.llm_calls_frame("other").empty
