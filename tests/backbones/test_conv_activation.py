"""The fused convolution and activation computes what the two layers compute, gradients too."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faster_rcnn.backbones import conv_activation as fused_module
from faster_rcnn.backbones import training_conv
from faster_rcnn.backbones.conv_activation import (
    PostOp,
    conv_activation,
    fuses,
    post_op,
)
from faster_rcnn.backbones.training_conv import conv_norm, run_layers
from layer_gradients import outputs_and_gradients

pytestmark = pytest.mark.skipif(
    not fused_module._has_post_ops(), reason="oneDNN's fused convolution needs an x86 CPU"
)

needs_bfloat16 = pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="oneDNN has no bfloat16 here"
)
CHANNELS_LAST = torch.channels_last
# out_channels, kernel, stride, padding, dilation, groups, bias
GEOMETRIES = [
    (12, 1, 1, 0, 1, 1, True),  # pointwise, MobileNet's expansion
    (8, 3, 1, 1, 1, 8, True),  # depthwise
    (8, 3, 2, 1, 1, 8, False),  # strided depthwise
    (6, 3, 2, 2, 2, 1, True),  # strided, dilated
    (10, (3, 1), (1, 2), (1, 0), 1, 2, True),  # a kernel, stride and padding per axis
]
ACTIVATIONS = [nn.ReLU(), nn.ReLU6(), nn.Hardtanh(-0.5, 1.0)]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_output_and_gradients_are_the_layers_in_float32(geometry, activation):
    out_channels, kernel, stride, padding, dilation, groups, bias = geometry
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(8, out_channels, kernel, stride, padding, dilation, groups, bias)
    # Outputs well on both sides of each clamp, so the masks matter.
    nn.init.normal_(conv.weight, std=2.0, generator=generator)
    x = torch.randn(2, 8, 11, 14, generator=generator).contiguous(memory_format=CHANNELS_LAST)
    assert fuses(conv, x)
    fused = outputs_and_gradients(
        lambda i: conv_activation(conv, i, conv.weight, conv.bias, post_op(activation)), conv, x
    )
    layers = outputs_and_gradients(lambda i: activation(conv(i)), conv, x)
    low, high = activation(torch.tensor([-99.0, 99.0]))
    assert (fused[0] == low).any() and ((fused[0] == high).any() or high == 99.0)
    for got, want in zip(fused, layers, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert fused[0].is_contiguous(memory_format=CHANNELS_LAST)


@needs_bfloat16
def test_under_bfloat16_autocast_it_computes_in_bfloat16_as_the_layers_do():
    generator = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(16, 32, 1)
    nn.init.normal_(conv.weight, std=2.0, generator=generator)
    x = torch.randn(2, 16, 9, 12, generator=generator).contiguous(memory_format=CHANNELS_LAST)
    relu6 = nn.ReLU6()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = outputs_and_gradients(
            lambda i: conv_activation(conv, i, conv.weight, conv.bias, post_op(relu6)), conv, x
        )
        layers = outputs_and_gradients(lambda i: relu6(conv(i)), conv, x)
    assert fused[0].dtype == torch.bfloat16
    assert torch.equal(fused[0], layers[0])  # the same kernel, and an exact clamp
    for got, want in zip(fused[1:], layers[1:], strict=True):
        assert got.dtype == torch.float32  # the leaves' own type
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2 * want.abs().max().item())


def test_post_ops_of_the_fusable_activations_only():
    assert post_op(nn.ReLU(inplace=True)) == PostOp("relu", [])
    assert post_op(nn.ReLU6()) == PostOp("hardtanh", [0.0, 6.0])
    assert post_op(nn.Hardtanh(-2.0, 3.0)) == PostOp("hardtanh", [-2.0, 3.0])
    assert post_op(nn.Hardswish()) is None and post_op(nn.Identity()) is None


def test_only_zero_padded_convolutions_of_channels_last_float32_or_bfloat16_maps_fuse():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 5, 6)
    assert fuses(conv, x.contiguous(memory_format=CHANNELS_LAST))
    assert not fuses(conv, x)  # contiguous: the matrix-product rewrite's
    assert not fuses(conv, x.double().contiguous(memory_format=CHANNELS_LAST))
    assert not fuses(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), x)
    same = nn.Conv2d(4, 4, 3, padding="same")
    assert not fuses(same, x.contiguous(memory_format=CHANNELS_LAST))


def test_training_fuses_in_float32_and_in_bfloat16_where_onednn_has_it():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 5, 6).contiguous(memory_format=CHANNELS_LAST)
    assert fuses(conv, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fuses(conv, x) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert fuses(conv, x.bfloat16()) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_training_runs_each_convolution_norm_and_activation_as_one_call(monkeypatch):
    calls = []

    def counted(*args):
        calls.append(args[-1].name)
        return conv_activation(*args)

    monkeypatch.setattr(training_conv, "conv_activation", counted)
    generator = torch.Generator().manual_seed(2)
    norm = nn.BatchNorm2d(8).eval()  # an nn.BatchNorm2d is not folded: it runs between
    layers = [nn.Conv2d(4, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 1), norm, nn.ReLU()]
    x = torch.randn(2, 4, 7, 9, generator=generator).contiguous(memory_format=CHANNELS_LAST)
    expected = nn.Sequential(*layers)(x)
    torch.testing.assert_close(run_layers(layers, x), expected, rtol=1e-5, atol=1e-5)
    assert calls == ["hardtanh"]  # the norm runs between the second conv and its ReLU


@needs_bfloat16
def test_a_strided_depthwise_convolution_trained_in_bfloat16_keeps_its_own_gradient(
    monkeypatch,
):
    calls = []
    monkeypatch.setattr(training_conv, "conv_activation", lambda *args: calls.append(args))
    conv = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False).train()
    x = torch.randn(1, 8, 9, 9).contiguous(memory_format=CHANNELS_LAST)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv_norm(conv, None, x, nn.ReLU6())
        with torch.no_grad():  # frozen: nothing to differentiate, so fused
            conv_norm(conv, None, x, nn.ReLU6())
    assert out.dtype == torch.bfloat16 and len(calls) == 1
    torch.testing.assert_close(out.float(), F.relu6(conv(x)).float(), rtol=2e-2, atol=2e-2)
