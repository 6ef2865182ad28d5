"""The LLM operator's parts against a scripted OpenAI-compatible server on 127.0.0.1: the client's
retries and failures, the model ensemble, the prompts, feedback on unusable answers, novelty."""

import random
import time
from pathlib import Path

import pytest

from harness.candidate import from_file
from harness.llm.client import CallFailed, ChatClient
from harness.llm.models import ModelSpec, draw
from harness.llm.prompts import Prompts
from harness.llm.scripted_server import ScriptedChatServer
from harness.novelty import policy_fingerprint
from harness.operators import EndpointError, Inspiration, LLMOperator, OperatorError, Population, build_operators

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = from_file(ROOT / "candidates" / "rounds_swap.py")
GOOD = ("Keep groups free.\n<<<<<<< SEARCH\n# 0: groups free (one placement over every GPU).\n"
        "GROUP_LOCAL = 1\n=======\n# 0: groups free (one placement over every GPU).\nGROUP_LOCAL = 0\n"
        ">>>>>>> REPLACE\n")
MISSING = "<<<<<<< SEARCH\nTHIS_IS_NOT_THERE = 1\n=======\nX = 2\n>>>>>>> REPLACE\n"
SAY = [{"role": "user", "content": "hi"}]


def client(url: str, **options) -> ChatClient:
    return ChatClient(model="m", base_url=url, **({"backoff_s": 0.01} | options))


def test_a_429_is_retried_after_the_servers_retry_after():
    with ScriptedChatServer([{"status": 429, "retry_after": 1}, {"content": "fine"}]) as server:
        answer = client(server.url).complete(SAY)
    assert answer.text == "fine" and answer.attempts == 2
    first, second = server.requests
    assert second["at"] - first["at"] >= 1.0  # the server's wait, not our 0.01 s backoff
    assert answer.prompt_tokens == 1 and answer.completion_tokens == 1


def test_server_errors_are_retried_then_reported_in_one_line():
    with ScriptedChatServer([{"status": 503}, {"status": 502}, {"content": "ok"}]) as server:
        assert client(server.url).complete(SAY).attempts == 3
    with ScriptedChatServer([{"status": 500, "message": "boom"}]) as server:
        with pytest.raises(CallFailed, match=r"HTTP 500: .*boom.* \(after 3 attempts\)") as failed:
            client(server.url, max_retries=2).complete(SAY)
    assert failed.value.attempts == 3 and len(server.requests) == 3 and "\n" not in failed.value.reason


def test_a_client_error_is_not_retried():
    with ScriptedChatServer([{"status": 400, "message": "bad model"}]) as server:
        with pytest.raises(CallFailed, match="HTTP 400"):
            client(server.url).complete(SAY)
    assert len(server.requests) == 1


def test_a_slow_answer_times_out_and_a_null_answer_is_a_failed_call():
    with ScriptedChatServer([{"content": "late", "delay_s": 2.0}]) as server:
        started = time.monotonic()
        with pytest.raises(CallFailed, match=r"no answer within 0.5 s"):
            client(server.url, timeout_s=0.5, max_retries=0).complete(SAY)
        assert time.monotonic() - started < 1.8
    with ScriptedChatServer([{"content": None}]) as server:
        with pytest.raises(CallFailed, match="content null or empty"):
            client(server.url).complete(SAY)
    assert len(server.requests) == 1  # the server answered: nothing to retry


def test_an_endpoint_that_is_down_is_a_failed_call_naming_it():
    with pytest.raises(CallFailed, match=r"cannot connect to http://127.0.0.1:9/v1"):
        client("http://127.0.0.1:9/v1", max_retries=1).complete(SAY)


def test_max_tokens_and_temperature_reach_the_server():
    with ScriptedChatServer([{"content": "ok"}]) as server:
        client(server.url, max_tokens=77, temperature=0.2).complete(SAY)
    assert server.requests[0]["max_tokens"] == 77 and server.requests[0]["temperature"] == 0.2


def test_models_are_drawn_by_weight_and_priced_per_token():
    models = [ModelSpec.from_config(0, {"model": "big", "base_url": "u", "weight": 3, "usd_per_mtok": 2.0}),
              ModelSpec.from_config(1, {"model": "small", "base_url": "u",
                                        "usd_per_mtok": {"prompt": 0.5, "completion": 1.5}})]
    rng = random.Random(0)
    share = sum(draw(models, rng).model == "big" for _ in range(2000)) / 2000
    assert 0.72 < share < 0.78
    assert models[0].cost_usd(1_000_000, 500_000) == pytest.approx(3.0)
    assert models[1].cost_usd(1_000_000, 1_000_000) == pytest.approx(2.0)
    assert models[1].cost_usd(None, 10) is None


@pytest.mark.parametrize("entry, message", [
    ({"model": "m"}, r"models\[0\]: base_url must be a non-empty string"),
    ({"model": "m", "base_url": "u", "weight": 0}, r"models\[0\]: weight must be a positive number"),
    ({"model": "m", "base_url": "u", "temprature": 0.2}, r"models\[0\]: unknown key\(s\) temprature"),
    ({"model": "m", "base_url": "u", "usd_per_mtok": {"input": 1}}, r"usd_per_mtok must be"),
    ({"model": "m", "base_url": "u", "max_tokens": 0}, r"max_tokens must be a positive integer"),
])
def test_a_bad_model_entry_is_one_line_naming_it(entry, message):
    with pytest.raises(ValueError, match=message):
        build_operators({"llm": {"models": [entry]}})


def test_the_prompt_carries_contract_scoring_parent_scores_inspirations_and_attempts():
    top = Inspiration("abc", "joint_count_search", "def rebalance_experts(): pass  # TOP CODE", 0.84,
                      {"gpu_balancedness": 0.84})
    population = Population(
        metrics={ROUNDS.id: {"gpu_balancedness": 0.8126, "failures": 0}},
        parent_cases=[{"case_name": "zipf-deepseek-v3-s0", "family": "zipf", "preset": "deepseek-v3",
                       "gpu_balancedness": 0.71, "oracle_gpu_balancedness": 0.83},
                      {"case_name": "hotspot-qwen3-s0", "family": "hotspot", "preset": "qwen3",
                       "gpu_balancedness": 0.9, "oracle_gpu_balancedness": 0.99}],
        top=[top], attempts=[{"operator": "llm", "description": "m: fewer starts", "status": "not better",
                              "fitness": 0.81}])
    system, user = Prompts.load().messages(ROUNDS, population)
    assert system["role"] == "system" and "rebalance_experts(weight, num_replicas" in system["content"]
    assert "window t+1" in system["content"] and "gpu_balancedness" in system["content"]
    assert "load_history=None" in system["content"] and "at most 8," in system["content"]  # the context it may take
    text = user["content"]
    assert "GROUP_LOCAL = 1" in text  # the parent's code
    assert "gpu_balancedness 0.8126" in text and "zipf 0.7100" in text and "hotspot 0.9000" in text
    assert text.index("zipf-deepseek-v3-s0 0.7100") < text.index("hotspot-qwen3-s0")  # weakest first
    assert "TOP CODE" in text and "fewer starts -> not better, fitness 0.8100" in text


def test_templates_are_files_a_user_replaces_and_a_bad_one_is_refused(tmp_path):
    mine = tmp_path / "user.md"
    mine.write_text("Improve $parent_name for $fitness. Cost: $$0.\n```python\n$parent_code\n```\n")
    _, user = Prompts.load({"user": str(mine)}).messages(ROUNDS, Population())
    assert user["content"].startswith("Improve rounds_swap for gpu_balancedness. Cost: $0.")
    mine.write_text("Improve $parnt_name")
    with pytest.raises(ValueError, match=r"prompts.user .*unknown or malformed field 'parnt_name'"):
        Prompts.load({"user": str(mine)})
    with pytest.raises(ValueError, match=r"unknown template\(s\) sytem"):
        Prompts.load({"sytem": str(mine)})


def operator(url: str, **options) -> LLMOperator:
    return LLMOperator(models=[{"model": "m", "base_url": url}], backoff_s=0.01, **options)


def test_an_unmatched_search_is_sent_back_with_the_error_and_the_closest_region():
    with ScriptedChatServer([{"content": MISSING.replace("THIS_IS_NOT_THERE = 1", "GROUP_LOCAL = 2\nKNOBS = {")},
                             {"content": GOOD}]) as server:
        op = operator(server.url)
        child = op.propose([ROUNDS], random.Random(0))
    assert "GROUP_LOCAL = 0" in child.source and child.origin == "llm" and child.parent_ids == (ROUNDS.id,)
    retry = server.requests[1]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert "GROUP_LOCAL = 2" in retry[2]["content"]  # its own answer, then why it failed
    lines = ROUNDS.source.splitlines()
    at = lines.index("GROUP_LOCAL = 1") + 1  # the closest region: that line and KNOBS after it
    assert "SEARCH text not found" in retry[3]["content"] and f"lines {at}-{at + 1}" in retry[3]["content"]
    assert "\nGROUP_LOCAL = 1\nKNOBS = {" in retry[3]["content"]
    calls = op.ledger.drain()
    assert [c["outcome"] for c in calls] == ["unusable", "applied"] and [c["attempt"] for c in calls] == [1, 2]
    assert calls[1]["child_id"] == child.id and calls[1]["prompt_tokens"] > 100 and calls[1]["completion_tokens"] > 0
    assert "GROUP_LOCAL = 1" in calls[0]["prompt"] and calls[0]["answer"].startswith("<<<<<<< SEARCH")


def test_feedback_attempts_bound_the_re_asks_and_prose_is_an_unusable_answer():
    with ScriptedChatServer([{"content": "I would use a better heuristic."}]) as server:
        with pytest.raises(OperatorError, match=r"no SEARCH/REPLACE block .*\(answer 3 of 3\)"):
            operator(server.url, feedback_attempts=2).propose([ROUNDS], random.Random(0))
    assert len(server.requests) == 3


def test_blocks_that_apply_are_kept_when_another_does_not():
    with ScriptedChatServer([{"content": GOOD + MISSING}]) as server:
        op = operator(server.url)
        child = op.propose([ROUNDS], random.Random(0))
    assert "GROUP_LOCAL = 0" in child.source and "X = 2" not in child.source
    assert "blocks left out: block 2" in child.description
    assert [c["outcome"] for c in op.ledger.drain()] == ["partial"]


def test_an_endpoint_failure_is_an_endpoint_error_with_the_call_recorded():
    with ScriptedChatServer([{"status": 503}]) as server:
        op = operator(server.url, max_retries=1)
        with pytest.raises(EndpointError, match="HTTP 503"):
            op.propose([ROUNDS], random.Random(0))
    (call,) = op.ledger.drain()
    assert call["outcome"] == "failed" and call["retries"] == 1 and call["child_id"] is None


def test_a_child_that_fails_evaluation_is_revised_in_the_same_conversation():
    with ScriptedChatServer([{"content": GOOD}, {"content": GOOD.replace("= 0", "= 0  # revised")}]) as server:
        op = operator(server.url, feedback_attempts=1)
        child = op.propose([ROUNDS], random.Random(0))
        assert op.can_revise(child)
        revised = op.revise(child, "zipf-x: invalid placement: expert 3 has no replica", random.Random(0))
    assert "# revised" in revised.source
    last = server.requests[1]["messages"]
    assert "the child failed evaluation: zipf-x: invalid placement" in last[-1]["content"]
    assert not op.can_revise(revised)  # one feedback attempt, used


def test_the_key_is_sent_but_never_kept(monkeypatch):
    monkeypatch.setenv("EPLB_TEST_KEY", "sk-test-0123456789abcdef")
    with ScriptedChatServer([{"content": GOOD}]) as server:
        op = LLMOperator(models=[{"model": "m", "base_url": server.url, "api_key_env": "EPLB_TEST_KEY"}])
        op.propose([ROUNDS], random.Random(0))
    assert "sk-test-0123456789abcdef" not in repr(op) + str(op.ledger.drain())


BODY = '''"""Doc."""
import numpy as np


def balanced_packing(weight, num_packs):
    return helper(weight)


def helper(weight):
    return weight * SCALE


SCALE = 2


def replicate_experts(weight, num_phy):
    return weight
'''


def test_the_policy_fingerprint_ignores_comments_docstrings_and_code_the_policy_never_runs():
    same = BODY.replace('"""Doc."""', '"""Other doc."""').replace("return helper(weight)",
                                                                  "return helper(weight)  # why")
    assert policy_fingerprint(same) == policy_fingerprint(BODY)
    assert policy_fingerprint(BODY + "\n\ndef unused():\n    return 1\n") == policy_fingerprint(BODY)
    assert policy_fingerprint(BODY.replace("SCALE = 2", "SCALE = 3")) != policy_fingerprint(BODY)  # read by helper
    own = BODY + "\n\ndef rebalance_experts(w, r, g, n, p):\n    return w\n"
    # With its own rebalance_experts, the primitives are dead code.
    assert policy_fingerprint(own.replace("weight * SCALE", "weight - SCALE")) == policy_fingerprint(own)
    assert policy_fingerprint(own.replace("return w\n", "return w * 2\n")) != policy_fingerprint(own)
    assert policy_fingerprint(BODY + "\nnp.random.seed(0)\n") != policy_fingerprint(BODY)  # runs on import
