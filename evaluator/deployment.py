"""Deployments: how many expert slots, on how many GPUs in how many nodes, and the locality rule.

A deployment is written ``slots=S,gpus=G,nodes=N[,groups=K][,group_local=required|free]``
(``nodes`` defaults to 1, ``groups`` to the model's, ``group_local`` to ``free``). A model
preset carries a default one; ``--deployment`` and an evolve config's ``deployment:``
replace it. ``group_local=required`` makes a placement that spreads an expert group over
more than one node invalid (failure kind ``constraint``), as an engine that routes a
group's tokens to one node would need.
"""

from __future__ import annotations

from dataclasses import dataclass


class DeploymentError(ValueError):
    """A deployment that cannot be used; the message is one line saying what is wrong."""


_INT_KEYS = {"slots": "num_replicas", "gpus": "num_gpus", "nodes": "num_nodes", "groups": "num_groups"}
_LOCALITY = {"required": True, "free": False}
KEYS = (*_INT_KEYS, "group_local")


@dataclass(frozen=True)
class Deployment:
    """``num_replicas`` slots spread evenly over ``num_gpus`` GPUs on ``num_nodes`` nodes.

    ``num_groups`` None keeps the model's expert groups.
    """

    num_replicas: int
    num_gpus: int
    num_nodes: int = 1
    num_groups: int | None = None
    group_local: bool = False

    @classmethod
    def parse(cls, spec: str) -> Deployment:
        """The deployment ``spec`` describes; :class:`DeploymentError` names the bad part."""
        values: dict[str, object] = {}
        for part in str(spec).split(","):
            key, sep, value = (s.strip() for s in part.partition("="))
            if not sep or not key:
                raise DeploymentError(f"deployment {spec!r}: {part.strip()!r} is not KEY=VALUE")
            if key not in KEYS:
                raise DeploymentError(f"deployment {spec!r}: unknown key {key!r}; known: {', '.join(KEYS)}")
            if key in values:
                raise DeploymentError(f"deployment {spec!r}: {key} given twice")
            if key == "group_local":
                if value not in _LOCALITY:
                    raise DeploymentError(f"deployment {spec!r}: group_local must be required or free, not {value!r}")
                values[key] = _LOCALITY[value]
                continue
            try:
                number = int(value)
            except ValueError:
                number = 0
            if number < 1:
                raise DeploymentError(f"deployment {spec!r}: {key} must be a positive integer, not {value!r}")
            values[key] = number
        missing = [k for k in ("slots", "gpus") if k not in values]
        if missing:
            raise DeploymentError(f"deployment {spec!r}: {' and '.join(missing)} missing "
                                  f"(write slots=S,gpus=G,nodes=N[,groups=K][,group_local=required|free])")
        return cls(**{_INT_KEYS.get(k, k): v for k, v in values.items()})

    @property
    def spec(self) -> str:
        """Canonical text form (what case names and keys carry)."""
        text = f"slots={self.num_replicas},gpus={self.num_gpus},nodes={self.num_nodes}"
        if self.num_groups is not None:
            text += f",groups={self.num_groups}"
        return text + (",group_local=required" if self.group_local else "")


def check_shape(where: str, num_experts: int, num_groups: int, num_replicas: int, num_gpus: int, num_nodes: int,
                group_local: bool) -> None:
    """Raise :class:`DeploymentError` (prefixed ``where``) unless the shape can hold a placement."""
    problems = []
    if num_replicas % num_gpus:
        problems.append(f"{num_replicas} slots are not a multiple of {num_gpus} GPUs")
    if num_gpus % num_nodes:
        problems.append(f"{num_gpus} GPUs are not a multiple of {num_nodes} nodes")
    if num_replicas < num_experts:
        problems.append(f"{num_replicas} slots are fewer than the {num_experts} experts")
    if num_experts % num_groups:
        problems.append(f"{num_experts} experts do not divide into {num_groups} groups")
    if group_local and num_groups % num_nodes:
        problems.append(f"group_local=required needs the {num_groups} groups to be a multiple of the {num_nodes} nodes")
    if problems:
        raise DeploymentError(f"{where}: {'; '.join(problems)}")
