"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # The shapes in tests are tiny: a second thread only adds synchronisation, which on a
    # shared 2-core machine costs far more than the math. Tests that need threads set them.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
