"""ResNet-50 with a feature pyramid: torchvision's ``resnet_fpn_backbone("resnet50")``.

The body is the ResNet trunk up to ``layer4`` (no average pool or classifier), returning
the outputs of ``layer1``..``layer4`` (strides 4, 8, 16, 32; 256..2048 channels) as
``"0"``..``"3"``; the FPN adds ``"pool"`` (stride 64). Parameter names, initialisation and
freezing follow torchvision, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from faster_rcnn.backbones.conv_norm_act import init_conv_bn_
from faster_rcnn.backbones.fpn import BackboneWithFPN
from faster_rcnn.backbones.freezing import check_trainable_layers, freeze_before
from faster_rcnn.backbones.frozen_bn import NormLayer, batch_norm_layer
from faster_rcnn.backbones.training_conv import ConvSequence, conv_norm

RESNET50_BLOCKS = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), plus the identity or a projected shortcut.

    The stride sits on the 3x3 convolution (ResNet v1.5, as in torchvision).

    Args:
        in_channels: input channels.
        width: channels of the 3x3 convolution; the block outputs ``4 * width``.
        stride: spatial stride of the block.
        norm_layer: normalisation layer class.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, norm_layer: NormLayer) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = norm_layer(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = ConvSequence(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                norm_layer(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W)`` -> ``(N, 4 * width, ceil(H / stride), ceil(W / stride))``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = conv_norm(self.conv1, self.bn1, x, self.relu)
        out = conv_norm(self.conv2, self.bn2, out, self.relu)
        out = conv_norm(self.conv3, self.bn3, out)
        return self.relu(out + shortcut)


def resnet_layers(
    blocks_per_layer: tuple[int, int, int, int], norm_layer: NormLayer
) -> OrderedDict[str, nn.Module]:
    """The layers of a bottleneck ResNet trunk, by torchvision's names.

    ``conv1``, ``bn1``, ``relu``, ``maxpool`` (stride 4 together), then ``layer1`` ..
    ``layer4`` with widths 64, 128, 256, 512 (outputs 256 .. 2048 channels) at strides
    4, 8, 16, 32. Convolutions get He initialisation (fan-out), norms weight 1 and bias 0.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
        bn1=norm_layer(64),
        relu=nn.ReLU(inplace=True),
        maxpool=nn.MaxPool2d(3, stride=2, padding=1),
    )
    in_channels = 64
    for index, (num_blocks, width) in enumerate(
        zip(blocks_per_layer, (64, 128, 256, 512), strict=True)
    ):
        stride = 1 if index == 0 else 2
        blocks = []
        for block_index in range(num_blocks):
            blocks.append(
                Bottleneck(in_channels, width, stride if block_index == 0 else 1, norm_layer)
            )
            in_channels = width * Bottleneck.expansion
        layers[f"layer{index + 1}"] = nn.Sequential(*blocks)
    for layer in layers.values():
        init_conv_bn_(layer)
    return layers


class ResNetFPNBackbone(BackboneWithFPN):
    """ResNet-50 + FPN; outputs ``"0"``..``"3"`` (strides 4..32) and ``"pool"`` (stride 64).

    Args:
        out_channels: FPN width (256 in torchvision).
        trainable_layers: how many of ``layer4, layer3, layer2, layer1, conv1`` (counted
            from the top, torchvision's order) are trained; the rest are frozen. With 5,
            ``bn1`` is trained as well.
        frozen_batch_norm: ``FrozenBatchNorm2d`` (fine-tuning ImageNet weights) instead of
            ``nn.BatchNorm2d``.
        fpn_norm_layer: the FPN's normalisation: ``None`` (``fasterrcnn_resnet50_fpn``) or
            ``nn.BatchNorm2d`` (``fasterrcnn_resnet50_fpn_v2``).
        returned_layers: which of ``layer1..layer4`` (1-4) the FPN reads.
    """

    def __init__(
        self,
        out_channels: int = 256,
        trainable_layers: int = 3,
        frozen_batch_norm: bool = True,
        fpn_norm_layer: NormLayer | None = None,
        returned_layers: tuple[int, ...] = (1, 2, 3, 4),
    ) -> None:
        check_trainable_layers(trainable_layers, 5, "resnet50_fpn")
        layers = resnet_layers(RESNET50_BLOCKS, batch_norm_layer(frozen_batch_norm))
        super().__init__(
            layers,
            return_layers={f"layer{k}": str(level) for level, k in enumerate(returned_layers)},
            in_channels_list=[256 * 2 ** (k - 1) for k in returned_layers],
            out_channels=out_channels,
            fpn_norm_layer=fpn_norm_layer,
        )
        stem = nn.ModuleList([layers["conv1"], layers["bn1"]])
        stages = [stem, *(layers[f"layer{k}"] for k in range(1, 5))]
        freeze_before(stages, trainable_layers)
