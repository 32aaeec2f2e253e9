"""Fixtures shared by several test modules (opt in with ``pytestmark``)."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Torch on one thread for the test. Tiny tensors gain nothing from threads, and on a busy
    2-core machine OpenMP threads spinning against each other made training tests ~3x slower.
    Use: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
