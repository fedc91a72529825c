"""Training-mode convolutions compute what the separate modules compute, gradients too."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faster_rcnn.backbones.build import build_backbone
from faster_rcnn.backbones.frozen_bn import FrozenBatchNorm2d
from faster_rcnn.backbones.training_conv import (
    ConvSequence,
    conv_norm,
    run_layers,
    training_rewrites,
)
from faster_rcnn.config import BackboneConfig
from layer_gradients import outputs_and_gradients


def frozen_norm(channels: int, generator: torch.Generator) -> FrozenBatchNorm2d:
    """A frozen norm with statistics far from the identity."""
    norm = FrozenBatchNorm2d(channels)
    norm.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
    norm.bias.copy_(torch.randn(channels, generator=generator))
    norm.running_mean.copy_(torch.randn(channels, generator=generator))
    norm.running_var.copy_(torch.rand(channels, generator=generator) + 0.1)
    return norm


@pytest.mark.parametrize(
    ("kernel", "stride", "groups", "bias", "with_norm"),
    [
        (1, 1, 1, False, True),  # pointwise: a matrix product, norm folded
        (3, 1, 1, False, True),  # the convolution with folded weights
        (3, 2, 8, False, True),  # strided, grouped
        (1, 2, 1, False, True),  # 1x1 but strided: a convolution
        (1, 1, 1, True, False),  # FPN lateral / RPN siblings: bias, no norm
    ],
)
def test_training_conv_norm_matches_the_modules(kernel, stride, groups, bias, with_norm):
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(16, 24, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=bias)
    norm = frozen_norm(24, generator) if with_norm else None
    x = torch.randn(2, 16, 9, 13, generator=generator)

    def modules(inputs: torch.Tensor) -> torch.Tensor:
        return conv(inputs) if norm is None else norm(conv(inputs))

    conv.train()
    rewritten = outputs_and_gradients(lambda inputs: conv_norm(conv, norm, inputs), conv, x)
    expected = outputs_and_gradients(modules, conv, x)
    for got, want in zip(rewritten, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_eval_mode_runs_the_modules_bit_for_bit():
    generator = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(8, 8, 1, bias=False).eval()
    norm = frozen_norm(8, generator)
    x = torch.randn(1, 8, 5, 7, generator=generator)
    assert torch.equal(conv_norm(conv, norm, x), norm(conv(x)))


def test_rewrites_switched_off_run_the_modules_bit_for_bit_in_training():
    generator = torch.Generator().manual_seed(4)
    conv = nn.Conv2d(8, 8, 1, bias=False).train()
    norm = frozen_norm(8, generator)
    x = torch.randn(2, 8, 5, 7, generator=generator)
    with training_rewrites(False):
        assert torch.equal(conv_norm(conv, norm, x), norm(conv(x)))
    assert not torch.equal(conv_norm(conv, norm, x), norm(conv(x)))  # on again: rewritten


def test_channels_last_and_trainable_norm_keep_the_convolution():
    generator = torch.Generator().manual_seed(2)
    conv = nn.Conv2d(8, 4, 1, bias=False).train()
    x = torch.randn(2, 8, 6, 6, generator=generator).contiguous(memory_format=torch.channels_last)
    assert torch.equal(conv_norm(conv, None, x), conv(x))
    norm = nn.BatchNorm2d(4).train()  # batch statistics: not foldable
    torch.testing.assert_close(conv_norm(conv, norm, x), norm(conv(x)))


def test_run_layers_pairs_each_convolution_with_the_norm_after_it():
    generator = torch.Generator().manual_seed(3)
    layers = [
        nn.Conv2d(4, 8, 3, padding=1, bias=False),
        frozen_norm(8, generator),
        nn.ReLU(),
        nn.Conv2d(8, 8, 1),  # no norm after it
        nn.ReLU(),
        nn.Conv2d(8, 6, 1, bias=False),
        frozen_norm(6, generator),
        nn.Conv2d(6, 5, 1),  # the last layer
    ]
    sequence = ConvSequence(*layers).train()
    reference = nn.Sequential(*layers).train()
    x = torch.randn(2, 4, 7, 5, generator=generator)
    torch.testing.assert_close(sequence(x), reference(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(run_layers(layers, x), reference(x), rtol=1e-5, atol=1e-5)
    assert list(sequence.state_dict()) == list(reference.state_dict())


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("name", ["resnet50_fpn", "mobilenet_v2_fpn", "mobilenet_v3_large_fpn"])
def test_backbone_features_and_gradients_agree_in_train_and_eval(name, layout):
    """Frozen batch norm behaves the same in both modes, so only the rewrites differ
    (channels-last: the activations fused into the convolutions on an x86 CPU)."""
    torch.manual_seed(0)
    backbone = build_backbone(BackboneConfig(name=name)).to(memory_format=layout)
    for module in backbone.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.running_var.uniform_(0.5, 2.0)
            module.running_mean.normal_(0.0, 0.1)
    x = torch.rand(1, 3, 96, 128).contiguous(memory_format=layout)
    trainable = [p for p in backbone.parameters() if p.requires_grad]

    def features_and_gradients(train: bool) -> list[torch.Tensor]:
        backbone.train(train)
        backbone.zero_grad(set_to_none=True)
        features = backbone(x)
        sum(f.square().mean() for f in features.values()).backward()
        return [*(f.detach() for f in features.values()), *(p.grad for p in trainable)]

    train, eval_ = features_and_gradients(True), features_and_gradients(False)
    for got, want in zip(train, eval_, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())
