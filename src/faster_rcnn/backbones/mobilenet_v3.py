"""MobileNetV3-Large + FPN: the backbone of torchvision's
``fasterrcnn_mobilenet_v3_large_fpn`` and ``fasterrcnn_mobilenet_v3_large_320_fpn``.

The body is MobileNetV3-Large's ``features`` (keys ``body.0.0.weight``,
``body.1.block.0.0.weight`` ...; Howard et al. 2019, Table 1): 15 inverted residual
blocks, some with squeeze-and-excitation, ReLU early and hard-swish late, then a 1x1 conv
to 960 channels. As for MobileNetV2, the FPN reads block 13 (the first 160-channel block,
stride 32) and block 16 (the final conv), so the outputs are ``"0"`` and ``"1"`` at stride
32 and ``"pool"`` at stride 64.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from faster_rcnn.backbones.conv_norm_act import Conv2dNormActivation, init_conv_bn_
from faster_rcnn.backbones.frozen_bn import NormLayer
from faster_rcnn.backbones.mobilenet import MobileNetFPNBackbone


class BlockSetting(NamedTuple):
    """One inverted residual block of MobileNetV3 (width multiplier 1.0)."""

    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    squeeze_excite: bool
    hard_swish: bool
    stride: int


MOBILENET_V3_LARGE_SETTING = (
    BlockSetting(16, 3, 16, 16, False, False, 1),
    BlockSetting(16, 3, 64, 24, False, False, 2),
    BlockSetting(24, 3, 72, 24, False, False, 1),
    BlockSetting(24, 5, 72, 40, True, False, 2),
    BlockSetting(40, 5, 120, 40, True, False, 1),
    BlockSetting(40, 5, 120, 40, True, False, 1),
    BlockSetting(40, 3, 240, 80, False, True, 2),
    BlockSetting(80, 3, 200, 80, False, True, 1),
    BlockSetting(80, 3, 184, 80, False, True, 1),
    BlockSetting(80, 3, 184, 80, False, True, 1),
    BlockSetting(80, 3, 480, 112, True, True, 1),
    BlockSetting(112, 3, 672, 112, True, True, 1),
    BlockSetting(112, 5, 672, 160, True, True, 2),
    BlockSetting(160, 5, 960, 160, True, True, 1),
    BlockSetting(160, 5, 960, 160, True, True, 1),
)
LAST_CHANNELS = 960


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to a multiple of ``divisor``, never more than 10% below it
    (the channel rounding of the MobileNet papers' reference code)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcitation(nn.Module):
    """Channel attention: global average pool -> 1x1 conv (ReLU) -> 1x1 conv (hard
    sigmoid), which scales each input channel; keys ``fc1``/``fc2`` as in torchvision."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(scale) * x


class InvertedResidualV3(nn.Module):
    """1x1 expand -> kxk depthwise -> squeeze-and-excitation (optional) -> 1x1 linear
    projection, in ``block``; the expansion is absent when it would not widen, and the
    input is added back when the block keeps both size and channels."""

    def __init__(self, setting: BlockSetting, norm_layer: NormLayer) -> None:
        super().__init__()
        activation = nn.Hardswish if setting.hard_swish else nn.ReLU
        expanded = setting.expanded
        layers: list[nn.Module] = []
        if expanded != setting.in_channels:
            layers.append(
                Conv2dNormActivation(
                    setting.in_channels,
                    expanded,
                    1,
                    norm_layer=norm_layer,
                    activation_layer=activation,
                )
            )
        layers.append(
            Conv2dNormActivation(
                expanded,
                expanded,
                setting.kernel,
                stride=setting.stride,
                groups=expanded,
                norm_layer=norm_layer,
                activation_layer=activation,
            )
        )
        if setting.squeeze_excite:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(
            Conv2dNormActivation(
                expanded, setting.out_channels, 1, norm_layer=norm_layer, activation_layer=None
            )
        )
        self.block = nn.Sequential(*layers)
        self.use_res_connect = setting.stride == 1 and setting.in_channels == setting.out_channels
        self.out_channels = setting.out_channels
        self.starts_stage = setting.stride > 1

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W)`` -> ``(N, out_channels, ceil(H / s), ceil(W / s))``."""
        out = self.block(x)
        return out + x if self.use_res_connect else out


def mobilenet_v3_large_features(norm_layer: NormLayer) -> nn.Sequential:
    """MobileNetV3-Large's ``features``: 17 modules, stride 32, 960 output channels.

    Convolutions get He initialisation (fan-out) and zero biases, batch norms weight 1 and
    bias 0, as in torchvision.
    """
    first = MOBILENET_V3_LARGE_SETTING[0].in_channels
    features: list[nn.Module] = [
        Conv2dNormActivation(
            3, first, 3, stride=2, norm_layer=norm_layer, activation_layer=nn.Hardswish
        )
    ]
    features += [InvertedResidualV3(s, norm_layer) for s in MOBILENET_V3_LARGE_SETTING]
    last_in = MOBILENET_V3_LARGE_SETTING[-1].out_channels
    features.append(
        Conv2dNormActivation(
            last_in, LAST_CHANNELS, 1, norm_layer=norm_layer, activation_layer=nn.Hardswish
        )
    )
    sequential = nn.Sequential(*features)
    init_conv_bn_(sequential)
    return sequential


class MobileNetV3FPNBackbone(MobileNetFPNBackbone):
    """MobileNetV3-Large + FPN; outputs ``"0"``, ``"1"`` (both stride 32) and ``"pool"``
    (stride 64). The stages start at blocks 0, 2, 4, 7, 13 and 16; the FPN reads blocks 13
    and 16, and 3 trainable stages are blocks 7 onwards."""

    name = "mobilenet_v3_large_fpn"
    features = staticmethod(mobilenet_v3_large_features)
