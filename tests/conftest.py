"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """The tests train tiny networks on a shared 2-core machine: more torch threads than free cores only slow them
    down (a one-second reward-model refit in ONI's judge thread took a minute on two). Restores the count after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
