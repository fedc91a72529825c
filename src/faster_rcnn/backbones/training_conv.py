"""Convolutions as training runs them: norm and activation inside, 1x1 as matrix products.

In eval mode every convolution and norm runs as its own module, so that inference
matches torchvision's operations bit for bit. In training mode rewrites with the same
arithmetic (up to rounding) save a third of a fine-tuning step on a CPU:

- A frozen batch norm after a bias-free convolution is ``y * scale + shift`` with
  constant ``scale`` and ``shift``, so it is the convolution with weights
  ``weight * scale`` and bias ``shift``. Scaling the weights (thousands of numbers)
  replaces two passes over the activation (millions) forward and one backward; the
  weights' gradient flows through the scaling.
- A 1x1 convolution of stride 1 is a matrix product per image. On a CPU, on contiguous
  (NCHW) maps, ``baddbmm`` runs it 2 to 3 times faster than the convolution, which
  reorders the maps into its blocked layout and back on every call (forward and
  backward). Elsewhere, and on channels-last maps, the convolution runs.
- A depthwise convolution of stride 2 in bfloat16 takes its input gradient from a
  stride-1 convolution's, which oneDNN computes about 6 times faster
  (:mod:`.strided_depthwise`).
- A ReLU or ReLU6 after a convolution of channels-last maps on an x86 CPU runs inside
  the convolution's oneDNN call (:mod:`.conv_activation`), forward and backward, except
  after such a strided depthwise convolution in bfloat16.

Rounding differs from the separate modules' (about 1e-6 relative), which is enough to
move a proposal of a random network across an NMS or top-k cut; inside
``with training_rewrites(False):`` training runs torchvision's exact operations, as the
parity tests need.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faster_rcnn.backbones.conv_activation import conv_activation, fuses, post_op
from faster_rcnn.backbones.frozen_bn import FrozenBatchNorm2d
from faster_rcnn.backbones.strided_depthwise import strided_depthwise_conv
from faster_rcnn.ops.autocast import runs_in_bfloat16

_REWRITES = ContextVar("training_rewrites", default=True)


@contextmanager
def training_rewrites(enabled: bool) -> Iterator[None]:
    """Within the block, training-mode convolutions are rewritten only if ``enabled``."""
    token = _REWRITES.set(enabled)
    try:
        yield
    finally:
        _REWRITES.reset(token)


def conv_norm(
    conv: nn.Conv2d, norm: nn.Module | None, x: Tensor, activation: nn.Module | None = None
) -> Tensor:
    """``activation(norm(conv(x)))`` (without the norm or activation where ``None``),
    rewritten in training mode (unless switched off by :func:`training_rewrites`).

    Args:
        conv: a zero-padded convolution.
        norm: the norm that follows it, or ``None``.
        x: ``(N, C_in, H, W)``.
        activation: the activation that follows the norm, or ``None``.

    Returns:
        ``(N, C_out, H', W')``.
    """
    if not (conv.training and _REWRITES.get()):
        out = conv(x) if norm is None else norm(conv(x))
        return out if activation is None else activation(out)
    weight, bias = conv.weight, conv.bias
    if isinstance(norm, FrozenBatchNorm2d) and bias is None:
        scale, bias = norm.scale_and_shift()
        weight = weight * scale.reshape(-1, 1, 1, 1)
        norm = None
    fused = None if norm is not None or activation is None else post_op(activation)
    if fused is not None and fuses(conv, x) and not _strided_depthwise_gradient(conv, x, weight):
        return conv_activation(conv, x, weight, bias, fused)
    out = _convolve(conv, x, weight, bias)
    out = out if norm is None else norm(out)
    return out if activation is None else activation(out)


def run_layers(layers: Iterable[nn.Module], x: Tensor) -> Tensor:
    """Apply ``layers`` in order, each convolution together with the norm and the
    activation after it."""
    layers = list(layers)
    index = 0
    while index < len(layers):
        layer = layers[index]
        index += 1
        if not isinstance(layer, nn.Conv2d):
            x = layer(x)
            continue
        norm = _next_of(layers, index, (FrozenBatchNorm2d, nn.BatchNorm2d))
        index += norm is not None
        activation = _next_of(layers, index, (nn.ReLU, nn.Hardtanh))
        index += activation is not None
        x = conv_norm(layer, norm, x, activation)
    return x


def _next_of(layers: list[nn.Module], index: int, kinds: tuple[type, ...]) -> nn.Module | None:
    """``layers[index]`` if there is one and it is of one of ``kinds``, else ``None``."""
    return layers[index] if index < len(layers) and isinstance(layers[index], kinds) else None


class ConvSequence(nn.Sequential):
    """An ``nn.Sequential`` (same parameter names) that runs through :func:`run_layers`."""

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, H, W)`` -> the last layer's output."""
        return run_layers(self, x)


def _convolve(conv: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    pointwise = conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
    if pointwise and x.device.type == "cpu" and x.is_contiguous():
        return _pointwise_conv(x, weight, bias)
    if _strided_depthwise_gradient(conv, x, weight):
        return strided_depthwise_conv(x, weight, bias, conv.stride, conv.padding)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _strided_depthwise_gradient(conv: nn.Conv2d, x: Tensor, weight: Tensor) -> bool:
    """A strided depthwise convolution in bfloat16 whose gradient is needed: its input
    gradient is best taken from a stride-1 convolution's (:mod:`.strided_depthwise`)."""
    trained = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return trained and _is_strided_depthwise(conv) and runs_in_bfloat16(x)


def _is_strided_depthwise(conv: nn.Conv2d) -> bool:
    depthwise = conv.groups == conv.in_channels == conv.out_channels
    plain = conv.dilation == (1, 1) and conv.padding_mode == "zeros"
    return depthwise and plain and conv.stride != (1, 1)


def _pointwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """1x1 convolution of ``(N, C_in, H, W)`` with ``(C_out, C_in, 1, 1)`` weights."""
    n, c_in, height, width = x.shape
    matrix = weight.reshape(1, -1, c_in).expand(n, -1, -1)
    pixels = x.reshape(n, c_in, height * width)
    if bias is None:
        out = torch.bmm(matrix, pixels)
    else:
        out = bias.reshape(1, -1, 1).expand(n, -1, height * width).baddbmm(matrix, pixels)
    return out.reshape(n, -1, height, width)
