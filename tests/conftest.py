"""Suite-wide settings."""

import os

import pytest
import torch

# With pytest-xdist each worker is a process of its own: one thread each keeps the workers
# from competing for the same cores (oversubscribed OpenMP threads slow runs severalfold).
# The commands the tests start as processes of their own (a run stopped and resumed) take
# one thread from the environment: on 2 threads beside the other worker the modules that
# start them took 144 s instead of 108.
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items: list) -> None:
    """Tests marked ``long`` run first: pytest-xdist hands tests out in collection order,
    so the longest one (minutes on its own) starts while the other worker takes the many
    short ones, instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def two_threads():
    """PyTorch on 2 threads for the test (as a user's 2-core machine runs it), its own
    count back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
