"""The ``llm`` operator: SEARCH/REPLACE diffs from a model ensemble, re-asked with the error when unusable.

Per proposal one model is drawn by weight from ``models`` (or the one ``model`` at
``base_url``). The prompt (:mod:`harness.llm.prompts`) carries the problem, the contract, the
scoring protocol, the parent's code with its per-family and weakest per-case scores, a few top
and diverse programs of the run with their code, and the latest attempts on this parent. An
answer that cannot be used (no block, a SEARCH that matches nothing or several places, a child
that does not compile or breaks the contract) is sent back to the same model with the error
and, for an unmatched SEARCH, the parent's closest region, up to ``feedback_attempts`` times.
Blocks that apply are kept when others do not (the child's description names those left out).
A child that fails evaluation can be revised the same way (:meth:`LLMOperator.revise`).

Every call goes to :attr:`LLMOperator.ledger`: model, tokens, latency, outcome, cost, prompt and
answer (``log_prompts``). The key is read from ``api_key_env`` at call time and never stored.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field, replace
from typing import ClassVar

from harness.candidate import Candidate
from harness.diffs import SEARCH_MARK, DiffError, make_child
from harness.llm.client import CallFailed, Completion
from harness.llm.ledger import Ledger
from harness.llm.models import ModelSpec, draw
from harness.llm.prompts import Prompts, as_text
from harness.operators.base import NO_POPULATION, OPERATORS, EndpointError, OperatorError, Population, root_name

_REMEMBERED = 512  # conversations kept for revising children that fail evaluation


@OPERATORS.register("llm")
@dataclass
class LLMOperator:
    """Ask OpenAI-compatible chat endpoints for diffs (see the module docstring for the options' roles)."""

    models: list = field(default_factory=list)
    base_url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int = 0  # 0: the server's default
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    feedback_attempts: int = 2
    prompts: dict = field(default_factory=dict)
    log_prompts: bool = True
    inspirations: int = 2  # top programs shown, and as many diverse ones
    recent_attempts: int = 4
    name: str = "llm"
    blocking: ClassVar[bool] = True
    ledger: Ledger = field(default_factory=Ledger, init=False, repr=False)

    def __post_init__(self):
        entries = list(self.models)
        if self.model or self.base_url:
            if entries:
                raise ValueError("operator 'llm': give models, or model and base_url, not both")
            entries = [{"model": self.model, "base_url": self.base_url}]
        if not entries:
            raise ValueError("operator 'llm' needs models (or model and base_url)")
        self._models = [ModelSpec.from_config(i, raw) for i, raw in enumerate(entries)]
        for key in ("timeout_s", "backoff_s", "max_backoff_s"):
            if not getattr(self, key) > 0:
                raise ValueError(f"operator 'llm': {key} must be positive")
        for key in ("max_retries", "feedback_attempts", "max_tokens", "inspirations", "recent_attempts"):
            if getattr(self, key) < 0:
                raise ValueError(f"operator 'llm': {key} must be zero or more")
        self._prompts = Prompts.load(self.prompts)
        self._conversations: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def propose(self, parents: list[Candidate], rng: random.Random, population: Population = NO_POPULATION
                ) -> Candidate:
        parent = parents[0]
        spec = draw(self._models, rng)
        return self._converse(parent, spec, self._prompts.messages(parent, population), rng, 1)

    def revise(self, child: Candidate, reason: str, rng: random.Random) -> Candidate:
        """Ask the model that wrote ``child`` again, with why it failed evaluation (same conversation)."""
        with self._lock:
            remembered = self._conversations.pop(child.id, None)
        if remembered is None:
            raise OperatorError(f"no conversation to revise {child.name} in")
        spec, messages, parent, asked = remembered
        if not self._attempt_left(asked):
            raise OperatorError(f"{child.name}: no feedback attempt left")
        messages = messages + [self._prompts.feedback_message(f"the child failed evaluation: {reason}", None)]
        return self._converse(parent, spec, messages, rng, asked + 1)

    def can_revise(self, child: Candidate) -> bool:
        with self._lock:
            remembered = self._conversations.get(child.id)
        return remembered is not None and self._attempt_left(remembered[3])

    def _attempt_left(self, asked: int) -> bool:
        """Whether a conversation that has asked ``asked`` times may ask once more."""
        return asked <= self.feedback_attempts

    # -- one conversation ---------------------------------------------------------------------
    def _converse(self, parent: Candidate, spec: ModelSpec, messages: list[dict], rng: random.Random,
                  asked: int) -> Candidate:
        client = spec.client(api_key_env=self.api_key_env, temperature=self.temperature,
                             max_tokens=self.max_tokens or None, timeout_s=self.timeout_s,
                             max_retries=self.max_retries, backoff_s=self.backoff_s, max_backoff_s=self.max_backoff_s)
        while True:
            try:
                answer = client.complete(messages, rng)
            except CallFailed as exc:
                self._record(spec, client.temperature, parent, messages, asked, "failed", exc.reason,
                             latency_s=exc.latency_s, retries=exc.attempts - 1)
                raise EndpointError(exc.reason) from None
            try:
                child, skipped = self._child(parent, spec, answer)
            except DiffError as exc:
                self._record(spec, client.temperature, parent, messages, asked, "unusable", str(exc), answer)
                if not self._attempt_left(asked):
                    raise OperatorError(f"{exc} (answer {asked} of {asked})") from None
                messages = messages + [{"role": "assistant", "content": answer.text},
                                       self._prompts.feedback_message(str(exc), exc.closest)]
                asked += 1
                continue
            self._record(spec, client.temperature, parent, messages, asked, "partial" if skipped else "applied",
                         "; ".join(skipped) or None, answer, child.id)
            with self._lock:
                self._conversations[child.id] = (spec, messages + [{"role": "assistant", "content": answer.text}],
                                                 parent, asked)
                while len(self._conversations) > _REMEMBERED:
                    self._conversations.pop(next(iter(self._conversations)))
            return child

    def _child(self, parent: Candidate, spec: ModelSpec, answer: Completion) -> tuple[Candidate, list[str]]:
        text = answer.text
        if SEARCH_MARK not in text and not re.search(r"```(?:python|py)\s*\n", text):
            raise DiffError("the answer has no SEARCH/REPLACE block (and no ```python program to replace the parent)")
        child, applied = make_child(parent, text, name=f"{root_name(parent.name)}~llm", partial=True)
        idea = " ".join(text.split(SEARCH_MARK)[0].replace("<DIFF>", " ").split())[:200]
        left_out = f" [blocks left out: {'; '.join(applied.skipped)}]" if applied.skipped else ""
        return replace(child, origin="llm", description=f"{spec.model}: {idea}{left_out}"[:1000]), applied.skipped

    def _record(self, spec: ModelSpec, temperature: float, parent: Candidate, messages: list[dict], asked: int,
                outcome: str, reason: str | None, answer: Completion | None = None, child_id: str | None = None,
                latency_s: float | None = None, retries: int | None = None) -> None:
        tokens = (answer.prompt_tokens, answer.completion_tokens) if answer else (None, None)
        self.ledger.record({
            "model": spec.model, "base_url": spec.base_url, "temperature": temperature, "parent_id": parent.id,
            "child_id": child_id, "attempt": asked, "outcome": outcome, "reason": reason,
            "prompt_tokens": tokens[0], "completion_tokens": tokens[1],
            "latency_s": answer.latency_s if answer else latency_s,
            "retries": answer.attempts - 1 if answer else retries,
            "cost_usd": spec.cost_usd(*tokens),
            "prompt": as_text(messages) if self.log_prompts else None,
            "answer": answer.text if answer and self.log_prompts else None,
        })
