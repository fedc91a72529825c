"""The strided depthwise convolution's own backward: the convolution's gradients exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faster_rcnn.backbones import strided_depthwise, training_conv
from faster_rcnn.backbones.strided_depthwise import _StridedDepthwiseConv, strided_depthwise_conv
from faster_rcnn.backbones.training_conv import conv_norm
from faster_rcnn.ops.autocast import runs_in_bfloat16

SHAPES = [
    # channels, height, width, kernel, stride, padding, bias
    (8, 13, 17, 3, (2, 2), (1, 1), True),  # MobileNet's: odd sizes, both edges
    (6, 12, 10, 5, (2, 2), (2, 2), False),  # MobileNetV3's 5x5
    (4, 9, 11, 3, (3, 3), (1, 1), True),  # a stride the spreading leaves gaps of 2 in
    (5, 10, 9, 3, (2, 1), (0, 1), True),  # a stride and padding per axis
]


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize(
    ("channels", "height", "width", "kernel", "stride", "padding", "bias"), SHAPES
)
def test_gradients_are_the_convolutions_in_float64(
    channels, height, width, kernel, stride, padding, bias, layout
) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, height, width, dtype=torch.float64, generator=generator)
    x = x.contiguous(memory_format=layout)
    weight = torch.randn(channels, 1, kernel, kernel, dtype=torch.float64, generator=generator)
    b = torch.randn(channels, dtype=torch.float64, generator=generator) if bias else None
    leaves = [t for t in (x, weight, b) if t is not None]

    def gradients(convolve) -> list[torch.Tensor]:
        inputs = [t.detach().clone().requires_grad_() for t in leaves]
        out = convolve(*inputs[:2], inputs[2] if bias else None)
        # A fixed, uneven upstream gradient, so every output element matters.
        out.backward(torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).reshape(out.shape))
        return [out.detach(), *(t.grad for t in inputs)]

    ours = gradients(lambda *a: _StridedDepthwiseConv.apply(*a, stride, padding))
    reference = gradients(lambda *a: F.conv2d(*a, stride, padding, 1, channels))
    assert [t.shape for t in ours] == [t.shape for t in reference]
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)


def test_only_the_gradients_asked_for_are_computed(monkeypatch) -> None:
    masks = []
    backward = strided_depthwise._convolution_backward

    def recorded(*args):
        masks.append(args[-1])
        return backward(*args)

    monkeypatch.setattr(strided_depthwise, "_convolution_backward", recorded)
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 1, 3, 3, dtype=torch.float64)  # frozen
    bias = torch.randn(4, dtype=torch.float64)
    _StridedDepthwiseConv.apply(x, weight, bias, (2, 2), (1, 1)).sum().backward()
    reference = x.detach().requires_grad_()
    F.conv2d(reference, weight, bias, 2, 1, 1, 4).sum().backward()
    assert masks == [(True, False, False)]  # the frozen weights and bias: none
    torch.testing.assert_close(x.grad, reference.grad, rtol=1e-12, atol=1e-12)


def test_in_bfloat16_the_output_is_the_convolutions_and_gradients_agree_to_rounding() -> None:
    """The forward pass is the same oneDNN call, so bit for bit; the input gradient sums
    the same products in another order, so within bfloat16's rounding of float64's."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 20, 28, generator=generator).contiguous(
        memory_format=torch.channels_last
    )
    weight = torch.randn(16, 1, 3, 3, generator=generator, requires_grad=True)
    bias = torch.randn(16, generator=generator, requires_grad=True)
    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = strided_depthwise_conv(x, weight, bias, (2, 2), (1, 1))
        plain = F.conv2d(x, weight, bias, 2, 1, 1, 16)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, plain)
    upstream = torch.linspace(-1.0, 1.0, ours.numel()).reshape(ours.shape).to(torch.bfloat16)
    ours.backward(upstream)
    rounded = [t.detach().to(torch.bfloat16).double().requires_grad_() for t in (x, weight, bias)]
    F.conv2d(*rounded, 2, 1, 1, 16).backward(upstream.double())
    for grad, reference in zip(
        (x.grad, weight.grad, bias.grad), (t.grad for t in rounded), strict=True
    ):
        assert grad.dtype == torch.float32
        torch.testing.assert_close(
            grad.double(), reference, rtol=2e-2, atol=2e-2 * reference.abs().max().item()
        )


@pytest.mark.parametrize("bfloat16", [True, False])
def test_training_takes_it_for_strided_depthwise_convolutions_in_bfloat16(
    monkeypatch, bfloat16
) -> None:
    calls = []

    def recorded(*args):
        calls.append(args)
        return strided_depthwise_conv(*args)

    monkeypatch.setattr(training_conv, "strided_depthwise_conv", recorded)
    x = torch.randn(1, 8, 12, 12)
    strided = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False).train()
    unstrided = nn.Conv2d(8, 8, 3, stride=1, padding=1, groups=8, bias=False).train()
    dense = nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False).train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        for conv in (strided, unstrided, dense):
            conv_norm(conv, None, x)
        with torch.no_grad():
            conv_norm(strided, None, x)  # nothing to differentiate: the plain convolution
    assert len(calls) == int(bfloat16)


def test_runs_in_bfloat16_reads_autocast_then_the_dtype() -> None:
    x = torch.zeros(1)
    assert not runs_in_bfloat16(x) and runs_in_bfloat16(x.to(torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert runs_in_bfloat16(x)
    with torch.autocast("cpu", dtype=torch.float16):
        assert not runs_in_bfloat16(x.to(torch.bfloat16))
    assert not runs_in_bfloat16(torch.zeros(1, device="meta", dtype=torch.bfloat16))
