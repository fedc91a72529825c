"""A small CPU backbone trained from scratch, for the demo and for tests.

Five stride-2 stages (widths 16, 32, 64, 96, 128 by default), each a 3x3 conv-BN-ReLU
that halves the resolution followed by cheap residual blocks (3x3 depthwise + 1x1
pointwise), and the same FPN as the large models over the stride 8, 16 and 32 stages:
outputs ``"0"``, ``"1"``, ``"2"`` (strides 8, 16, 32) and ``"pool"`` (stride 64).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from faster_rcnn.backbones.conv_norm_act import Conv2dNormActivation, init_conv_bn_
from faster_rcnn.backbones.fpn import BackboneWithFPN
from faster_rcnn.backbones.freezing import check_trainable_layers, freeze_before
from faster_rcnn.backbones.frozen_bn import NormLayer, batch_norm_layer

SMALL_WIDTHS = (16, 32, 64, 96, 128)
# Residual blocks after each stage's downsampling conv: more where the maps are small and
# the blocks cheap, which widens the receptive field for objects that fill the image.
SMALL_BLOCKS = (0, 1, 1, 2, 2)


class DepthwiseResidual(nn.Module):
    """``relu(x + BN(pw(relu(BN(dw3x3(x))))))``: a residual block at the cost of ~C^2 per pixel.

    Args:
        channels: input and output channels.
        norm_layer: normalisation layer class.
    """

    def __init__(self, channels: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            Conv2dNormActivation(channels, channels, 3, groups=channels, norm_layer=norm_layer),
            Conv2dNormActivation(
                channels, channels, 1, norm_layer=norm_layer, activation_layer=None
            ),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        return self.relu(x + self.conv(x))


def small_layers(norm_layer: NormLayer) -> OrderedDict[str, nn.Module]:
    """Stages ``stem`` (stride 2), ``stage1`` .. ``stage4`` (strides 4 .. 32).

    Convolutions get He initialisation (fan-out), batch norms weight 1 and bias 0.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = 3
    for index, (width, num_blocks) in enumerate(zip(SMALL_WIDTHS, SMALL_BLOCKS, strict=True)):
        name = "stem" if index == 0 else f"stage{index}"
        layers[name] = nn.Sequential(
            Conv2dNormActivation(in_channels, width, 3, stride=2, norm_layer=norm_layer),
            *(DepthwiseResidual(width, norm_layer) for _ in range(num_blocks)),
        )
        in_channels = width
    for layer in layers.values():
        init_conv_bn_(layer)
    return layers


class SmallFPNBackbone(BackboneWithFPN):
    """Small conv net + FPN; outputs ``"0"``, ``"1"``, ``"2"`` (strides 8, 16, 32), ``"pool"`` (64).

    Args:
        out_channels: FPN width (64 in the demo preset).
        trainable_layers: how many of the 5 stages, counted from the top, are trained
            (default all: the network is trained from scratch).
        frozen_batch_norm: ``FrozenBatchNorm2d`` instead of ``nn.BatchNorm2d``; keep it
            ``False`` when training from scratch, or the norms stay the identity.
    """

    def __init__(
        self, out_channels: int = 64, trainable_layers: int = 5, frozen_batch_norm: bool = False
    ) -> None:
        layers = small_layers(batch_norm_layer(frozen_batch_norm))
        check_trainable_layers(trainable_layers, len(layers), "small")
        super().__init__(
            layers,
            return_layers={"stage2": "0", "stage3": "1", "stage4": "2"},
            in_channels_list=list(SMALL_WIDTHS[2:]),
            out_channels=out_channels,
        )
        freeze_before(list(layers.values()), trainable_layers)
