"""What precision an operation on a tensor runs in, autocast included."""

from __future__ import annotations

import torch
from torch import Tensor


def runs_in_bfloat16(x: Tensor) -> bool:
    """Whether a convolution or matrix product of ``x`` on a CPU runs in bfloat16: under
    ``torch.autocast("cpu", dtype=torch.bfloat16)``, or outside autocast on bfloat16."""
    if x.device.type != "cpu":
        return False
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu") == torch.bfloat16
    return x.dtype == torch.bfloat16
