"""A convolution and the ReLU or ReLU6 after it as one oneDNN call on a CPU.

oneDNN can apply an activation to a convolution's output while the output is still in
registers (a "post-op"), so the activation costs no pass over the feature map of its
own. Apart, the activation reads and writes the whole map once more, and in bfloat16
PyTorch's clamp is slow besides: ReLU6 of MobileNetV2's first expansion (4 images at
800x1088, 84 million values) took 52 ms in bfloat16 against 17 in float32, where the
convolution before it took 13. In a ``mobilenet_v2_fpn`` bfloat16 training step (4
images at 800 px) the clamps and their gradients took a quarter of the step; with the
activations fused the step took 0.69 times as long on an Intel Xeon with AMX (2
threads; ``benchmarks/recipe_ab.md``, round 44). In float32 it took 0.89-0.95 times as
long, with oneDNN on AVX-512 or held to AVX2. ResNet-50's convolutions, whose work per
output value dwarfs the activation's pass, ran as fast fused as apart, layer by layer
(0.97-1.02, forward and backward), so training fuses in both precisions (:func:`fuses`;
round 45).

The activation's gradient needs only its output: ReLU6 passes the gradient where
``0 < y < 6`` and ReLU where ``y > 0``, which holds of the output exactly where it holds
of the input. So the fused call saves its output for the backward pass, as the in-place
activation it replaces did, and the backward pass masks the output gradient, then
takes the convolution's gradients from ``aten.convolution_backward`` like autograd does.
Both passes compute what the separate layers compute: the activation is exact, and the
convolution is the same oneDNN kernel (``tests/backbones/test_conv_activation.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from faster_rcnn.host_cpus import is_x86
from faster_rcnn.ops.autocast import runs_in_bfloat16
from faster_rcnn.ops.roi_align import memory_format_of


class PostOp(NamedTuple):
    """An activation as oneDNN's convolution applies it: its name and scalars."""

    name: str
    scalars: list[float]


def post_op(activation: nn.Module) -> PostOp | None:
    """The post-op that computes ``activation`` (``nn.ReLU``, ``nn.ReLU6`` or another
    ``nn.Hardtanh``), or ``None`` for any other module."""
    if isinstance(activation, nn.ReLU):
        return PostOp("relu", [])
    if isinstance(activation, nn.Hardtanh):
        return PostOp("hardtanh", [float(activation.min_val), float(activation.max_val)])
    return None


def fuses(conv: nn.Conv2d, x: Tensor) -> bool:
    """Whether training runs ``conv`` on ``x`` with the activation after it as one call
    (:func:`conv_activation`): a zero-padded convolution of channels-last
    ``(N, C, H, W)`` maps on an x86 CPU, in float32 or in bfloat16 where oneDNN has it.
    Contiguous maps keep the rewrites of :mod:`.training_conv`."""
    if not (x.device.type == "cpu" and x.dim() == 4 and _has_post_ops()):
        return False
    if memory_format_of(x) != torch.channels_last:
        return False
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return False
    if runs_in_bfloat16(x):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return x.dtype == torch.float32


def _has_post_ops() -> bool:
    return (
        is_x86()
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def conv_activation(
    conv: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None, activation: PostOp
) -> Tensor:
    """``activation(F.conv2d(x, weight, bias, ...))`` with ``conv``'s stride, padding,
    dilation and groups, as one oneDNN call; differentiable in ``x``, ``weight`` and
    ``bias``. Under bfloat16 autocast it computes in bfloat16, as autocast's convolution
    would. Call it only where :func:`fuses` holds.

    Args:
        conv: the convolution whose geometry to use.
        x: ``(N, C_in, H, W)``, channels-last.
        weight: ``(C_out, C_in / groups, kh, kw)`` (``conv.weight``, or it with a frozen
            norm folded in).
        bias: ``(C_out,)`` or ``None``.
        activation: the activation after it (:func:`post_op`).

    Returns:
        ``(N, C_out, H_out, W_out)``, channels-last.
    """
    if runs_in_bfloat16(x):
        x, weight = x.to(torch.bfloat16), weight.to(torch.bfloat16)
        bias = None if bias is None else bias.to(torch.bfloat16)
    geometry = _Geometry(list(conv.stride), list(conv.padding), list(conv.dilation), conv.groups)
    with torch.autocast("cpu", enabled=False):
        return _ConvActivation.apply(x, weight, bias, geometry, activation)


class _Geometry(NamedTuple):
    stride: list[int]
    padding: list[int]
    dilation: list[int]
    groups: int


class _ConvActivation(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        geometry: _Geometry,
        activation: PostOp,
    ) -> Tensor:
        out = torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, geometry.padding, geometry.stride, geometry.dilation,
            geometry.groups, activation.name, activation.scalars, "",
        )  # fmt: skip
        ctx.save_for_backward(x, weight, out)
        ctx.geometry, ctx.activation = geometry, activation
        return out

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        x, weight, out = ctx.saved_tensors
        geometry, activation = ctx.geometry, ctx.activation
        if activation.name == "relu":
            grad_out = torch.ops.aten.threshold_backward(grad_out, out, 0.0)
        else:
            grad_out = torch.ops.aten.hardtanh_backward(grad_out, out, *activation.scalars)
        needs = list(ctx.needs_input_grad[:3])
        grads = torch.ops.aten.convolution_backward(
            grad_out, x, weight, [weight.shape[0]] if needs[2] else None,
            geometry.stride, geometry.padding, geometry.dilation, False, [0, 0],
            geometry.groups, needs,
        )  # fmt: skip
        return (*grads, None, None)
