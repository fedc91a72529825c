"""Batch norm with fixed statistics and affine parameters: torchvision's ``FrozenBatchNorm2d``.

Detection batches are small (one or two large images per GPU), too small for batch
statistics, so a backbone fine-tuned from ImageNet keeps the classifier's statistics and
affine parameters as constants: four buffers, no parameters, the same in training and
evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

# A normalisation layer class: called with the number of channels.
NormLayer = Callable[[int], nn.Module]


class FrozenBatchNorm2d(nn.Module):
    """``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``, per channel.

    The state dict holds ``weight``, ``bias``, ``running_mean`` and ``running_var`` as in
    ``nn.BatchNorm2d``, so ImageNet checkpoints load into it; their ``num_batches_tracked``
    entry is dropped on load.

    Args:
        num_features: number of channels ``C``.
        eps: added to the variance for numerical stability.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def scale_and_shift(self) -> tuple[Tensor, Tensor]:
        """``(C,)`` scale and shift with ``y = x * scale + shift``."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(N, C, H, W)``; returns the same shape."""
        # One scale and one shift per channel, in torchvision's order of operations so
        # that the results agree bit for bit.
        scale, shift = self.scale_and_shift()
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def batch_norm_layer(frozen: bool) -> NormLayer:
    """The norm layer class a backbone is built with: frozen, or ``nn.BatchNorm2d``."""
    return FrozenBatchNorm2d if frozen else nn.BatchNorm2d
