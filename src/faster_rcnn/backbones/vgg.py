"""VGG-16 conv layers, the paper's shared backbone (Ren et al. 2015, Simonyan & Zisserman 2015).

``body`` is torchvision's ``vgg16().features`` without its last max pool: 13 3x3 convs with
ReLU and 4 max pools, ending at conv5_3's ReLU (stride 16, 512 channels). The layer
indices are torchvision's (convs at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), so an
ImageNet checkpoint's ``features.N`` become ``body.N``.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import pairwise

from torch import Tensor, nn

from faster_rcnn.backbones.freezing import check_trainable_layers, freeze_before

# Channels of each conv block of VGG-16 (configuration "D").
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG16Backbone(nn.Module):
    """VGG-16 up to conv5_3; one output ``"0"`` of 512 channels at stride 16.

    Args:
        trainable_layers: how many of the 5 conv blocks, counted from the top, are trained.
            The default 3 freezes conv1_x and conv2_x, as py-faster-rcnn does.

    Attributes:
        out_channels: 512.
    """

    def __init__(self, trainable_layers: int = 3) -> None:
        super().__init__()
        check_trainable_layers(trainable_layers, len(VGG16_BLOCKS), "vgg16")
        layers: list[nn.Module] = []
        block_starts: list[int] = []
        in_channels = 3
        for block_index, block in enumerate(VGG16_BLOCKS):
            if block_index > 0:
                layers.append(nn.MaxPool2d(2, stride=2))
            block_starts.append(len(layers))
            for channels in block:
                layers += [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = channels
        self.body = nn.Sequential(*layers)
        self.out_channels = in_channels
        for module in self.body.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        block_bounds = pairwise([*block_starts, len(layers)])
        stages = [self.body[start:stop] for start, stop in block_bounds]
        freeze_before(stages, trainable_layers)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``(N, 3, H, W)`` -> ``{"0": (N, 512, H // 16, W // 16)}`` (floor at each pool)."""
        return OrderedDict([("0", self.body(x))])
