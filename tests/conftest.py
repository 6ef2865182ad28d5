import pytest
import torch

from harness.candidate import baseline, load_module, rebalance_function


@pytest.fixture(scope="session")
def baseline_rebalance():
    """The composed DeepSeek policy, loaded in-process (trusted code)."""
    return rebalance_function(load_module(baseline()))


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
