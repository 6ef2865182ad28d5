"""One chat-completions endpoint through the official ``openai`` client: timeout, retries, accounting.

The ``openai`` client reaches any OpenAI-compatible server through ``base_url`` (vLLM,
SGLang, llama.cpp, Ollama, proxies). Retries are ours, not the client's, so each attempt
is counted and the wait is the server's: on HTTP 429 and 5xx, a timeout or a refused
connection, wait ``Retry-After`` when the server sends it (capped at ``max_backoff_s``),
else ``backoff_s * 2 ** attempt`` with jitter, up to ``max_retries`` times.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.redact import redact

# Retried: rate limits, server errors, timeouts and connection failures; anything else is final.
RETRIED_STATUS = {408, 409, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Completion:
    """An answer and what it cost: tokens as the server counted them (None when it did not say)."""

    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    attempts: int


class CallFailed(Exception):
    """No usable answer after the retries; ``reason`` is one line, ``attempts`` and ``latency_s`` what it took."""

    def __init__(self, reason: str, attempts: int, latency_s: float):
        super().__init__(reason)
        self.reason, self.attempts, self.latency_s = reason, attempts, latency_s


def retry_after_s(headers) -> float | None:
    """The server's ``Retry-After`` (or ``retry-after-ms``) in seconds, None when absent or unreadable."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None  # an HTTP date: fall back to our own backoff
    return None


@dataclass
class ChatClient:
    """One model at one endpoint. ``api_key_env`` names the variable holding the key: the key itself
    is read at call time and never stored."""

    model: str
    base_url: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int | None = None
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def complete(self, messages: list[dict], rng: random.Random | None = None) -> Completion:
        """The model's answer to ``messages``; :class:`CallFailed` when none is usable.

        A null or empty ``content`` is a failed call (it is not retried: the server answered).
        """
        import openai

        rng = rng or random.Random()
        client = openai.OpenAI(base_url=self.base_url, api_key=os.environ.get(self.api_key_env) or "none",
                               timeout=self.timeout_s, max_retries=0)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            wait = None
            try:
                response = client.chat.completions.create(
                    model=self.model, messages=messages, temperature=self.temperature,
                    **({"max_tokens": self.max_tokens} if self.max_tokens else {}))
            except openai.APIStatusError as exc:
                reason = f"HTTP {exc.status_code}: {_said(exc)}"
                if exc.status_code in RETRIED_STATUS:
                    wait = retry_after_s(exc.response.headers)
                else:
                    raise self._failed(reason, attempt, started) from None
            except openai.APITimeoutError:
                reason = f"no answer within {self.timeout_s:g} s"
            except openai.APIConnectionError as exc:
                reason = f"cannot connect to {self.base_url}: {exc.__cause__ or exc}"
            except openai.OpenAIError as exc:  # an answer the client cannot read
                raise self._failed(f"{exc.__class__.__name__}: {exc}", attempt, started) from None
            else:
                return self._completion(response, attempt, started)
            if attempt > self.max_retries:
                raise self._failed(f"{reason} (after {attempt} attempts)", attempt, started)
            if wait is None:
                wait = self.backoff_s * 2 ** (attempt - 1) * (0.5 + rng.random())
            self.sleep(min(wait, self.max_backoff_s))

    def _completion(self, response, attempt: int, started: float) -> Completion:
        choices = getattr(response, "choices", None) or []
        content = choices[0].message.content if choices and choices[0].message else None
        if not isinstance(content, str) or not content.strip():
            raise self._failed("the model answered no text (content null or empty)", attempt, started)
        usage = getattr(response, "usage", None)
        return Completion(text=content, model=getattr(response, "model", None) or self.model,
                          prompt_tokens=getattr(usage, "prompt_tokens", None),
                          completion_tokens=getattr(usage, "completion_tokens", None),
                          latency_s=time.monotonic() - started, attempts=attempt)

    def _failed(self, reason: str, attempt: int, started: float) -> CallFailed:
        return CallFailed(redact(f"LLM call to {self.model} failed: {reason}")[:500], attempt,
                          time.monotonic() - started)


def _said(exc) -> str:
    """What the server said with an error status, on one line (it may echo our headers: redacted later)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]  # the OpenAI error shape, {"error": {"message": ...}}, as the client parsed it
    else:
        try:
            text = exc.response.text
        except Exception:  # a streamed or closed body
            text = str(exc)
    return " ".join(text.split())[:300]
