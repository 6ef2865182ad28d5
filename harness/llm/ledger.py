"""Every LLM call of a run, as it happens: what the loop stores, prints and budgets by."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from harness.store.schema import LLM_CALL_COLUMNS as CALL_KEYS  # one call's record, as stored


@dataclass
class Ledger:
    """Thread-safe: operator threads :meth:`record`, the loop :meth:`drain` s and reads the totals."""

    _pending: list[dict] = field(default_factory=list)
    calls: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, call: dict) -> None:
        row = {key: call.get(key) for key in CALL_KEYS}
        with self._lock:
            self._pending.append(row)
            self.calls += 1
            self.failed += row["outcome"] == "failed"
            self.prompt_tokens += row["prompt_tokens"] or 0
            self.completion_tokens += row["completion_tokens"] or 0
            self.cost_usd += row["cost_usd"] or 0.0
            self.latency_s += row["latency_s"] or 0.0

    def drain(self) -> list[dict]:
        """The calls recorded since the last drain, oldest first."""
        with self._lock:
            out, self._pending = self._pending, []
        return out

    def totals(self) -> dict:
        with self._lock:
            return {"llm_calls": self.calls, "llm_failed_calls": self.failed, "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens, "cost_usd": round(self.cost_usd, 6),
                    "llm_latency_s": round(self.latency_s, 3)}

    def restore(self, totals: dict) -> None:
        """Carry a resumed run's totals on (the calls themselves are already stored)."""
        self.calls, self.failed = totals.get("llm_calls", 0), totals.get("llm_failed_calls", 0)
        self.prompt_tokens, self.completion_tokens = totals.get("prompt_tokens", 0), totals.get("completion_tokens", 0)
        self.cost_usd, self.latency_s = totals.get("cost_usd", 0.0), totals.get("llm_latency_s", 0.0)
