"""What a rebalance costs: expert copies that must move between two placements.

GPUs inside a node are interchangeable for a deployment (their ranks can be
renumbered at no cost), so before counting, the new placement's GPUs in each node are
matched to the old ones to keep as many expert copies in place as possible (an
assignment problem per layer and node, solved exactly). A new replica then counts as
transferred when its GPU did not hold that expert before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Migration:
    slots_changed: int  # slots whose expert differs, GPUs as numbered (no relabelling)
    copies_transferred: int  # replicas whose GPU (after the best relabelling) lacked that expert
    copies_share: float  # copies_transferred / all slots
    bytes_moved: float  # copies_transferred * expert_bytes

    def to_dict(self) -> dict:
        return asdict(self)


def _held(phy2log: np.ndarray, num_gpus: int, num_experts: int) -> np.ndarray:
    """``[L, G, E]`` bool: does GPU g hold expert e."""
    L, P = phy2log.shape
    per_gpu = phy2log.reshape(L, num_gpus, P // num_gpus)
    held = np.zeros((L, num_gpus, num_experts), dtype=bool)
    np.put_along_axis(held, per_gpu, True, axis=2)
    return held


def migration(old: np.ndarray, new: np.ndarray, num_nodes: int, num_gpus: int, expert_bytes: float = 0.0) -> Migration:
    """Migration from ``old`` to ``new`` placements (``phy2log [L, P]`` arrays, same shape)."""
    old, new = np.asarray(old), np.asarray(new)
    L, P = new.shape
    E = int(max(old.max(), new.max())) + 1
    slots_per_gpu = P // num_gpus
    gpus_per_node = num_gpus // num_nodes
    old_held = _held(old, num_gpus, E)
    new_copies = np.zeros((L, num_gpus, E), dtype=np.int64)  # replicas of e on new GPU g
    np.add.at(new_copies, (np.arange(L)[:, None], np.arange(P)[None, :] // slots_per_gpu, new), 1)
    kept = 0
    for layer in range(L):
        for node in range(num_nodes):
            gpus = slice(node * gpus_per_node, (node + 1) * gpus_per_node)
            # overlap[i, j]: replicas on new GPU i that old GPU j already holds.
            overlap = new_copies[layer, gpus] @ old_held[layer, gpus].T.astype(np.int64)
            rows, cols = linear_sum_assignment(overlap, maximize=True)
            kept += int(overlap[rows, cols].sum())
    transferred = L * P - kept
    return Migration(
        slots_changed=int((old != new).sum()),
        copies_transferred=transferred,
        copies_share=transferred / (L * P),
        bytes_moved=transferred * expert_bytes,
    )
