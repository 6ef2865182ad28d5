"""Checks that a candidate's output is a real placement before anything scores it."""

from __future__ import annotations

import torch

from evaluator.presets import Preset

_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


class InvalidPlacement(ValueError):
    """The output is not a placement; the message says why."""


class ConstraintViolation(InvalidPlacement):
    """The output is a placement, but one the deployment forbids; the message says where."""


def _check_tensor(name: str, value: object, shape: tuple[int | None, ...]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise InvalidPlacement(f"{name} is a {type(value).__name__}, not a torch.Tensor")
    if value.dtype not in _INTEGER_DTYPES:
        raise InvalidPlacement(f"{name} has dtype {value.dtype}, expected an integer dtype")
    if value.dim() != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape, strict=True)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise InvalidPlacement(f"{name} has shape {list(value.shape)}, expected {want}")
    return value.detach().to("cpu", torch.int64)


def validate_placement(
    output: object,
    num_layers: int,
    num_experts: int,
    num_replicas: int,
    num_gpus: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate ``rebalance_experts`` output; return it as CPU int64 tensors.

    Args:
        output: what the candidate returned, expected
            ``(phy2log [L, P], log2phy [L, E, R], logcnt [L, E])``.
        num_layers, num_experts, num_replicas, num_gpus: the case's shape.

    Raises:
        InvalidPlacement: with the first problem found.
    """
    if not isinstance(output, tuple | list) or len(output) != 3:
        raise InvalidPlacement("rebalance_experts must return (phy2log, log2phy, logcnt)")
    if num_replicas % num_gpus:
        raise InvalidPlacement(f"{num_replicas} slots cannot give {num_gpus} GPUs equal shares")
    L, E, P = num_layers, num_experts, num_replicas
    phy2log = _check_tensor("phy2log", output[0], (L, P))
    log2phy = _check_tensor("log2phy", output[1], (L, E, None))
    logcnt = _check_tensor("logcnt", output[2], (L, E))

    bad = (phy2log < 0) | (phy2log >= E)
    if bad.any():
        layer, slot = bad.nonzero()[0].tolist()
        raise InvalidPlacement(
            f"phy2log[{layer}, {slot}] = {int(phy2log[layer, slot])} is not an expert id in [0, {E})"
        )
    counts = torch.zeros(L, E, dtype=torch.int64).scatter_add_(1, phy2log, torch.ones_like(phy2log))
    missing = counts == 0
    if missing.any():
        layer, expert = missing.nonzero()[0].tolist()
        raise InvalidPlacement(f"expert {expert} has no replica in layer {layer}")
    wrong = logcnt != counts
    if wrong.any():
        layer, expert = wrong.nonzero()[0].tolist()
        raise InvalidPlacement(
            f"logcnt[{layer}, {expert}] = {int(logcnt[layer, expert])} but phy2log holds "
            f"{int(counts[layer, expert])} replicas of it"
        )
    _check_log2phy(log2phy, phy2log, logcnt)
    return phy2log, log2phy, logcnt


def _check_log2phy(log2phy: torch.Tensor, phy2log: torch.Tensor, logcnt: torch.Tensor) -> None:
    """``log2phy[l, e, :logcnt[l, e]]`` must be exactly the slots holding e, the rest -1."""
    L, E, R = log2phy.shape
    P = phy2log.shape[1]
    if R < int(logcnt.max()):
        raise InvalidPlacement(f"log2phy has {R} columns but an expert has {int(logcnt.max())} replicas")
    used = torch.arange(R).view(1, 1, R) < logcnt.unsqueeze(-1)
    out_of_range = used & ((log2phy < 0) | (log2phy >= P))
    if out_of_range.any():
        layer, expert, k = out_of_range.nonzero()[0].tolist()
        raise InvalidPlacement(
            f"log2phy[{layer}, {expert}, {k}] = {int(log2phy[layer, expert, k])} is not a slot in [0, {P})"
        )
    padding = ~used & (log2phy != -1)
    if padding.any():
        layer, expert, k = padding.nonzero()[0].tolist()
        raise InvalidPlacement(f"log2phy[{layer}, {expert}, {k}] should be -1 padding")
    # Each slot must appear once, under the expert phy2log says it holds.
    safe = torch.where(used, log2phy, 0)
    points_to = torch.gather(phy2log, 1, safe.view(L, -1)).view(L, E, R)
    mismatch = used & (points_to != torch.arange(E).view(1, E, 1))
    if mismatch.any():
        layer, expert, k = mismatch.nonzero()[0].tolist()
        slot = int(log2phy[layer, expert, k])
        raise InvalidPlacement(
            f"log2phy[{layer}, {expert}, {k}] = slot {slot}, which phy2log gives to expert "
            f"{int(phy2log[layer, slot])}"
        )
    seen = torch.zeros(L, P, dtype=torch.int64).scatter_add_(
        1, safe.view(L, -1), used.view(L, -1).to(torch.int64)
    )
    if (seen != 1).any():
        layer, slot = (seen != 1).nonzero()[0].tolist()
        raise InvalidPlacement(f"slot {slot} of layer {layer} appears {int(seen[layer, slot])} times in log2phy")


def group_presence(phy2log: torch.Tensor, num_experts: int, num_groups: int, num_nodes: int) -> torch.Tensor:
    """``[L, groups, N]`` whether node n holds a replica of group q; node n holds slots ``n*P/N ..``."""
    L, P = phy2log.shape
    group = phy2log // (num_experts // num_groups)
    node = torch.arange(P).div(P // num_nodes, rounding_mode="floor").expand(L, P)
    present = torch.zeros(L, num_groups, num_nodes, dtype=torch.bool)
    present[torch.arange(L)[:, None].expand(L, P), group, node] = True
    return present


def check_group_local(phy2log: torch.Tensor, num_experts: int, num_groups: int, num_nodes: int) -> None:
    """Raise :class:`ConstraintViolation` unless every expert group of ``phy2log [L, P]`` sits on one node."""
    present = group_presence(phy2log, num_experts, num_groups, num_nodes)
    spread = present.sum(dim=-1)
    if (spread > 1).any():
        layer, g = (spread > 1).nonzero()[0].tolist()
        nodes = present[layer, g].nonzero().flatten().tolist()
        raise ConstraintViolation(f"group_local=required, but expert group {g} of layer {layer} has replicas on "
                                  f"nodes {', '.join(map(str, nodes))}")


def validate_on(output: object, preset: Preset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`validate_placement` for ``preset``'s shape, and its deployment's locality rule."""
    placement = validate_placement(output, preset.num_layers, preset.num_experts, preset.num_replicas,
                                   preset.num_gpus)
    if preset.group_local:
        check_group_local(placement[0], preset.num_experts, preset.num_groups, preset.num_nodes)
    return placement
