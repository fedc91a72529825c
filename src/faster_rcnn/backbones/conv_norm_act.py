"""Convolution, then optional norm and activation: torchvision's ``Conv2dNormActivation``.

It is an ``nn.Sequential`` so its parameters are named ``0.weight`` (the convolution),
``1.weight`` ... (the norm), exactly as in torchvision's MobileNetV2 and FPN checkpoints;
in training it runs convolution and norm as one (:mod:`.training_conv`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from faster_rcnn.backbones.frozen_bn import NormLayer
from faster_rcnn.backbones.training_conv import ConvSequence


class Conv2dNormActivation(ConvSequence):
    """``conv -> norm -> activation``; the convolution has a bias only when there is no norm.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size; padding keeps the size at stride 1.
        stride: convolution stride.
        groups: convolution groups (``in_channels`` for a depthwise convolution).
        norm_layer: called with ``out_channels``; ``None`` for no normalisation.
        activation_layer: called with ``inplace=True``; ``None`` for no activation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: NormLayer | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=(kernel_size - 1) // 2,
                groups=groups,
                bias=norm_layer is None,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


def init_conv_bn_(module: nn.Module) -> None:
    """torchvision's ImageNet-classifier initialisation, in place: Kaiming-normal (fan out)
    convolutions with zero biases, batch norm with unit scale and zero shift. A module on
    the ``meta`` device (the shape-only build that ``check_backbone_matches`` makes) holds
    no values to draw, and drawing them there takes seconds: it is left as it is."""
    if any(parameter.is_meta for parameter in module.parameters()):
        return
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
