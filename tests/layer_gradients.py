"""The output and gradients of a layer's computation, for comparing two ways of running it."""

from __future__ import annotations

import torch
from torch import nn


def outputs_and_gradients(run, module: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """``run(x)``, and the gradients of ``x`` and of every parameter of ``module``."""
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    out = run(x)
    # A fixed, uneven upstream gradient, so every output element matters.
    out.backward(torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).reshape(out.shape))
    return [out.detach(), x.grad, *(p.grad for p in module.parameters())]
