"""Fixtures shared by the models' tests."""

import pytest
import torch


@pytest.fixture
def one_thread_seeded():
    """One torch thread and seed 0 for the test, then the thread count as it was."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
