"""A strided depthwise convolution whose input gradient runs fast in bfloat16 on a CPU.

MobileNet's depthwise 3x3 convolutions of stride 2 are cheap (a few million
multiply-adds), but in bfloat16 oneDNN 3.12 computes their input gradient with its
generic strided kernel (``brgconv_strided``) instead of the depthwise one it uses in
float32 (``jit_dw``): 30-40 ms a call for 4 images at 800 px on a Zen 4 core pair,
against 1.3-2.5 ms in float32, about 7 % of a ``mobilenet_v2_fpn`` training step.

The input gradient of a stride-``s`` convolution is that of the stride-1 convolution
with the same weights for the output gradient spread out ``s`` apart with zeros between
(the stride-1 convolution's outputs at ``s i`` are the strided one's at ``i``). oneDNN
runs that stride-1 gradient with its fast depthwise kernel: 5-7 ms a call with the
spreading, the same sums as before (bfloat16 rounding aside).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx

from faster_rcnn.ops.roi_align import memory_format_of

IntPair = tuple[int, int]


def strided_depthwise_conv(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: IntPair, padding: IntPair
) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, groups=C)`` in bfloat16, with the
    input gradient computed as a stride-1 convolution's (see the module's docstring).

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(C, 1, kh, kw)``, the depthwise kernels (dilation 1, zero padding).
        bias: ``(C,)`` or ``None``.
        stride: ``(sh, sw)``.
        padding: ``(ph, pw)``.

    Returns:
        ``(N, C, H_out, W_out)`` in bfloat16.
    """
    dtype = torch.bfloat16
    bias = None if bias is None else bias.to(dtype)
    with torch.autocast("cpu", enabled=False):
        return _StridedDepthwiseConv.apply(x.to(dtype), weight.to(dtype), bias, stride, padding)


class _StridedDepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: IntPair,
        padding: IntPair,
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])

    @staticmethod
    def backward(
        ctx: FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_x = grad_weight = grad_bias = None
        if needs_x:
            grad_x = _convolution_backward(
                _spread(grad_out, x, weight, ctx.stride, ctx.padding),
                x,
                weight,
                (1, 1),
                ctx.padding,
                (True, False, False),
            )[0]
        if needs_weight or needs_bias:  # a missing bias needs no gradient
            _, grad_weight, grad_bias = _convolution_backward(
                grad_out, x, weight, ctx.stride, ctx.padding, (False, needs_weight, needs_bias)
            )
        return grad_x, grad_weight, grad_bias, None, None


def _spread(
    grad_out: Tensor, x: Tensor, weight: Tensor, stride: IntPair, padding: IntPair
) -> Tensor:
    """The ``(N, C, H_out, W_out)`` output gradient of the strided convolution placed at
    every ``stride``-th position of the stride-1 convolution's ``(N, C, H1, W1)`` output,
    zeros elsewhere, in ``x``'s memory layout."""
    n, channels = grad_out.shape[:2]
    height, width = (x.shape[i + 2] + 2 * padding[i] - weight.shape[i + 2] + 1 for i in (0, 1))
    layout = memory_format_of(x)
    spread = torch.empty(
        n, channels, height, width, dtype=grad_out.dtype, memory_format=layout
    ).zero_()
    spread[:, :, :: stride[0], :: stride[1]] = grad_out
    return spread


def _convolution_backward(
    grad_out: Tensor,
    x: Tensor,
    weight: Tensor,
    stride: IntPair,
    padding: IntPair,
    output_mask: tuple[bool, bool, bool],
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``(grad_x, grad_weight, grad_bias)`` of the depthwise convolution, those asked."""
    return torch.ops.aten.convolution_backward(
        grad_out,
        x,
        weight,
        [weight.shape[0]] if output_mask[2] else None,
        list(stride),
        list(padding),
        [1, 1],
        False,
        [0, 0],
        x.shape[1],
        list(output_mask),
    )
