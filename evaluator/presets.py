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

from dataclasses import asdict, dataclass, replace

from evaluator.deployment import Deployment, check_shape


@dataclass(frozen=True)
class Preset:
    """One model's MoE shape and one deployment of it (the preset's default, or another: :meth:`deployed`).

    ``num_replicas`` physical slots are spread evenly over ``num_gpus`` GPUs on
    ``num_nodes`` nodes; ``group_local`` requires every expert group on one node.
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
    group_local: bool = False

    def __post_init__(self) -> None:
        check_shape(f"{self.name} ({self.num_experts} experts)", self.num_experts, self.num_groups,
                    self.num_replicas, self.num_gpus, self.num_nodes, self.group_local)

    @property
    def deployment(self) -> Deployment:
        return Deployment(self.num_replicas, self.num_gpus, self.num_nodes, self.num_groups, self.group_local)

    def deployed(self, deployment: Deployment | None = None, num_layers: int | None = None,
                 num_experts: int | None = None) -> Preset:
        """This model on ``deployment`` (None: the default one), with the layer and expert counts of a trace if given.

        Raises:
            evaluator.deployment.DeploymentError: when the deployment cannot hold this model.
        """
        d = deployment or self.deployment
        experts = num_experts or self.num_experts
        groups = d.num_groups if d.num_groups is not None else (self.num_groups if experts % self.num_groups == 0
                                                                else 1)
        where = f"deployment {d.spec} of {self.name} ({experts} experts)"
        check_shape(where, experts, groups, d.num_replicas, d.num_gpus, d.num_nodes, d.group_local)
        return replace(self, num_layers=num_layers or self.num_layers, num_experts=experts, num_groups=groups,
                       num_replicas=d.num_replicas, num_nodes=d.num_nodes, num_gpus=d.num_gpus,
                       group_local=d.group_local)

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
        # 24 layers, all MoE; 60 routed experts, top-4 (plus 4 shared experts, not balanced).
        Preset("qwen1.5-moe-a2.7b", "Qwen1.5-MoE-A2.7B", 24, 60, 1, 4, 64, 1, 8),
        # 12 encoder + 12 decoder layers, every other one sparse: 12 MoE layers; 128 experts, top-1.
        Preset("switch-base-128", "Switch-Base-128", 12, 128, 1, 1, 144, 2, 16),
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
