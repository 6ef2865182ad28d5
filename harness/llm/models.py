"""A model ensemble: one model drawn per proposal by weight, each with its own endpoint and settings."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

from harness.llm.client import ChatClient


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``models:``. Fields left out take the operator's shared values.

    ``usd_per_mtok`` is the price per million tokens, one number for both directions or
    ``{prompt: x, completion: y}``; without it no cost is recorded for the model.
    """

    model: str
    base_url: str
    weight: float = 1.0
    temperature: float | None = None
    max_tokens: int | None = None
    api_key_env: str | None = None
    usd_per_mtok: float | dict | None = None

    @classmethod
    def from_config(cls, index: int, raw: object) -> ModelSpec:
        """A model entry from the config; ValueError names the entry and the problem."""
        where = f"models[{index}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be a mapping with model and base_url")
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        for key in ("model", "base_url"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ValueError(f"{where}: {key} must be a non-empty string")
        spec = cls(**raw)
        if not _number(spec.weight) or not 0 < spec.weight < math.inf:
            raise ValueError(f"{where}: weight must be a positive number, got {spec.weight!r}")
        if spec.temperature is not None and (not _number(spec.temperature) or not 0 <= spec.temperature <= 2):
            raise ValueError(f"{where}: temperature must be between 0 and 2, got {spec.temperature!r}")
        if spec.max_tokens is not None and (not isinstance(spec.max_tokens, int) or isinstance(spec.max_tokens, bool)
                                            or spec.max_tokens < 1):
            raise ValueError(f"{where}: max_tokens must be a positive integer, got {spec.max_tokens!r}")
        if spec.api_key_env is not None and not isinstance(spec.api_key_env, str):
            raise ValueError(f"{where}: api_key_env must be the name of an environment variable")
        price = spec.usd_per_mtok
        prices = list(price.values()) if isinstance(price, dict) else [price]
        if price is not None and (isinstance(price, dict) and set(price) - {"prompt", "completion"}
                                  or not all(_number(p) and p >= 0 for p in prices)):
            raise ValueError(f"{where}: usd_per_mtok must be a number or {{prompt: x, completion: y}}")
        return spec

    def cost_usd(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """What a call cost, from the tokens the server counted (None without a price or counts)."""
        if self.usd_per_mtok is None or prompt_tokens is None or completion_tokens is None:
            return None
        price = self.usd_per_mtok
        per_prompt, per_completion = (price.get("prompt", 0.0), price.get("completion", 0.0)) \
            if isinstance(price, dict) else (price, price)
        return (prompt_tokens * per_prompt + completion_tokens * per_completion) / 1e6

    def client(self, *, api_key_env: str, temperature: float, max_tokens: int | None, **call) -> ChatClient:
        return ChatClient(model=self.model, base_url=self.base_url, api_key_env=self.api_key_env or api_key_env,
                          temperature=temperature if self.temperature is None else self.temperature,
                          max_tokens=self.max_tokens or max_tokens, **call)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def draw(models: list[ModelSpec], rng: random.Random) -> ModelSpec:
    """One model, with probability proportional to its weight."""
    return rng.choices(models, [m.weight for m in models])[0]
