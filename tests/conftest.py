"""Suite-wide settings."""

import os

import torch

# With pytest-xdist each worker is a process of its own: one thread each keeps the workers
# from competing for the same cores (oversubscribed OpenMP threads slow runs severalfold).
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)
