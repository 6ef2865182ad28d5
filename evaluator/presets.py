"""Deployment shapes of real MoE models.

Layer and expert counts come from each model's published ``config.json``
(MoE layers = ``num_hidden_layers`` minus dense layers such as DeepSeek's
``first_k_dense_replace``; experts = ``n_routed_experts`` / ``num_experts`` /
``num_local_experts``; groups = ``n_group`` where the router has expert groups,
else 1). The slot/GPU/node figures are a deployment choice: DeepSeek-V3's are the
ones of DeepSeek's EPLB example and of the published EPLB evolution benchmark
(288 slots, 4 nodes x 8 GPUs); the others are typical expert-parallel layouts
with about one redundant slot per GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preset:
    """One model's MoE shape and one deployment of it.

    ``num_replicas`` physical slots are spread evenly over ``num_gpus`` GPUs on
    ``num_nodes`` nodes.
    """

    name: str
    model: str
    num_layers: int
    num_experts: int
    num_groups: int
    top_k: int
    num_replicas: int
    num_nodes: int
    num_gpus: int

    def __post_init__(self) -> None:
        if self.num_replicas < self.num_experts:
            raise ValueError(f"preset {self.name}: fewer slots than experts")
        if self.num_replicas % self.num_gpus or self.num_gpus % self.num_nodes:
            raise ValueError(f"preset {self.name}: slots/GPUs/nodes do not divide")
        if self.num_experts % self.num_groups:
            raise ValueError(f"preset {self.name}: experts do not divide into groups")

    @property
    def hierarchical(self) -> bool:
        """DeepSeek's policy packs whole expert groups onto nodes in this case."""
        return self.num_groups % self.num_nodes == 0

    @property
    def slots_per_gpu(self) -> int:
        return self.num_replicas // self.num_gpus

    def rebalance_args(self) -> tuple[int, int, int, int]:
        """``(num_replicas, num_groups, num_nodes, num_gpus)`` as ``rebalance_experts`` takes them."""
        return self.num_replicas, self.num_groups, self.num_nodes, self.num_gpus

    def to_dict(self) -> dict:
        return asdict(self) | {"hierarchical": self.hierarchical}


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        # 61 layers, first 3 dense; 256 routed experts in 8 groups, top-8.
        Preset("deepseek-v3", "DeepSeek-V3/R1", 58, 256, 8, 8, 288, 4, 32),
        # 94 layers, all MoE; 128 experts, top-8, no expert groups.
        Preset("qwen3-235b", "Qwen3-235B-A22B", 94, 128, 1, 8, 144, 2, 16),
        # 61 layers, first dense; 384 experts, top-8, one group.
        Preset("kimi-k2", "Kimi-K2", 60, 384, 1, 8, 448, 8, 64),
        # 36 layers, all MoE; 128 experts, top-4.
        Preset("gpt-oss-120b", "GPT-OSS-120B", 36, 128, 1, 4, 144, 1, 8),
        # 32 layers; 8 experts, top-2.
        Preset("mixtral-8x7b", "Mixtral-8x7B", 32, 8, 1, 2, 16, 1, 4),
    ]
}


class UnknownPresetError(KeyError):
    def __str__(self) -> str:
        return f"unknown preset {self.args[0]!r}; known: {', '.join(PRESETS)}"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; :class:`UnknownPresetError` lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPresetError(name) from None
