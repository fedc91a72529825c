"""The machine a benchmark record was measured on, in the words every record uses."""

from __future__ import annotations

import platform

import torch


def describe() -> str:
    """``"x86_64 AVX2, 2 threads"``: the processor's architecture, the widest vector
    instructions PyTorch's CPU kernels use on it, and the threads they run on. The
    project's machines have come both with and without AVX-512, and some kernels differ
    between the two by an order of magnitude (``roi_heads/box_head.py``)."""
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{platform.machine()} {capability}, {torch.get_num_threads()} threads"
