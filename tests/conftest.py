"""Suite-wide settings."""

import os

import torch

# With pytest-xdist each worker is a process of its own: one thread each keeps the workers
# from competing for the same cores (oversubscribed OpenMP threads slow runs severalfold).
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list) -> None:
    """Tests marked ``long`` run first: pytest-xdist hands tests out in collection order,
    so the longest one (minutes on its own) starts while the other worker takes the many
    short ones, instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
