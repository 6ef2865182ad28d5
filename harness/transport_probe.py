"""The transport probe: a policy that does no work, timed to learn what the sandbox's round trip costs.

Its answer is a fixed valid placement with exactly the shapes and dtypes of the timed
candidate's answers (``SHAPES``, ``DTYPES``: set by :mod:`harness.transport` when it loads
this source), and it takes exactly the candidate's context keywords (``CONTEXT``), so the
same bytes cross the trust boundary both ways as in the candidate's timed calls.
"""

import inspect

import numpy as np
import torch

# Set by the harness (each on its one line): phy2log [L, P], log2phy [L, E, R], logcnt [L, E].
SHAPES = ((1, 1), (1, 1, 1), (1, 1))
DTYPES = ("int64", "int64", "int64")
CONTEXT = ()
_ANSWER = []


def balanced_packing(weight, num_packs):
    raise NotImplementedError("the transport probe only answers rebalance_experts")


def replicate_experts(weight, num_phy):
    raise NotImplementedError("the transport probe only answers rebalance_experts")


def _answer(num_nodes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Node by node, each node's experts (whole groups) once, then its extra slots to them in turn."""
    (layers, slots), (_, experts, width) = SHAPES[0], SHAPES[1]
    node_slots, node_experts = slots // num_nodes, experts // num_nodes
    local = np.concatenate([np.arange(node_experts), np.arange(node_slots - node_experts) % node_experts])
    phy = (np.arange(num_nodes)[:, None] * node_experts + local).ravel()
    count = np.bincount(phy, minlength=experts)
    rank = np.tile(np.arange(node_slots) // node_experts, num_nodes)  # the k-th pass over a node's experts
    log2phy = np.full((experts, width), -1)
    log2phy[phy, rank] = np.arange(slots)
    arrays = (np.tile(phy, (layers, 1)), np.tile(log2phy, (layers, 1, 1)), np.tile(count, (layers, 1)))
    return tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=d)) for a, d in zip(arrays, DTYPES, strict=True))


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus, **context):
    if not _ANSWER:
        # Groups whole on nodes when they divide over them (a deployment may require it).
        _ANSWER.extend(_answer(num_nodes if num_groups % num_nodes == 0 else 1))
    return tuple(_ANSWER)


# Take the candidate's context keywords, no more: the harness sends what the policy takes.
rebalance_experts.__signature__ = inspect.Signature(
    [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
     for n in ("weight", "num_replicas", "num_groups", "num_nodes", "num_gpus")]
    + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None) for k in CONTEXT])
