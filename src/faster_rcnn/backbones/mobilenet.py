"""MobileNetV2 + FPN: torchvision's ``mobilenet_backbone("mobilenet_v2", fpn=True)``.

The body is MobileNetV2's ``features`` (keys ``body.0.0.weight``, ``body.1.conv.0.0.weight``
...). As in torchvision, the FPN reads the last two "stages": block 14 (the first 160-channel
block, stride 32) and block 18 (the final 1x1 conv to 1280 channels, stride 32), so the
outputs are ``"0"`` and ``"1"`` at stride 32 and ``"pool"`` at stride 64.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import pairwise

from torch import Tensor, nn

from faster_rcnn.backbones.conv_norm_act import Conv2dNormActivation, init_conv_bn_
from faster_rcnn.backbones.fpn import BackboneWithFPN
from faster_rcnn.backbones.freezing import check_trainable_layers, freeze_before
from faster_rcnn.backbones.frozen_bn import NormLayer, batch_norm_layer
from faster_rcnn.backbones.training_conv import ConvSequence

# (expansion t, output channels c, repeats n, first stride s), Sandler et al. 2018, Table 2.
MOBILENET_V2_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, in ``conv``.

    The expansion conv is absent when ``expand_ratio == 1``; the input is added back when
    the block keeps both size and channels.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the depthwise conv (1 or 2).
        expand_ratio: hidden channels = ``round(in_channels * expand_ratio)``.
        norm_layer: normalisation layer class.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: int,
        norm_layer: NormLayer,
    ) -> None:
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(
                Conv2dNormActivation(
                    in_channels, hidden, 1, norm_layer=norm_layer, activation_layer=nn.ReLU6
                )
            )
        layers += [
            Conv2dNormActivation(
                hidden,
                hidden,
                3,
                stride=stride,
                groups=hidden,
                norm_layer=norm_layer,
                activation_layer=nn.ReLU6,
            ),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            norm_layer(out_channels),
        ]
        self.conv = ConvSequence(*layers)
        self.out_channels = out_channels
        # A stride-2 block starts a new stage ("C_n" block in torchvision's terms).
        self.starts_stage = stride > 1

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W)`` -> ``(N, out_channels, ceil(H / s), ceil(W / s))``."""
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


def mobilenet_v2_features(norm_layer: NormLayer) -> nn.Sequential:
    """MobileNetV2's ``features`` (width 1.0): 19 modules, stride 32, 1280 output channels.

    Convolutions get He initialisation (fan-out), batch norms weight 1 and bias 0, as in
    torchvision.
    """
    in_channels = 32
    features: list[nn.Module] = [
        Conv2dNormActivation(
            3, in_channels, 3, stride=2, norm_layer=norm_layer, activation_layer=nn.ReLU6
        )
    ]
    for expand_ratio, out_channels, repeats, first_stride in MOBILENET_V2_SETTING:
        for index in range(repeats):
            stride = first_stride if index == 0 else 1
            features.append(
                InvertedResidual(in_channels, out_channels, stride, expand_ratio, norm_layer)
            )
            in_channels = out_channels
    features.append(
        Conv2dNormActivation(in_channels, 1280, 1, norm_layer=norm_layer, activation_layer=nn.ReLU6)
    )
    sequential = nn.Sequential(*features)
    init_conv_bn_(sequential)
    return sequential


class MobileNetFPNBackbone(BackboneWithFPN):
    """A MobileNet's ``features`` + FPN, as torchvision's ``_mobilenet_extractor`` builds
    it: by default outputs ``"0"`` and ``"1"`` from the last two stages and ``"pool"``
    from the last.

    The stages are delimited by the first block, every stride-2 block (``starts_stage``)
    and the last block; the FPN reads the first block of each returned stage (by default
    the second-to-last stage and the last block). A subclass names the network
    (:attr:`name`) and builds its blocks (:meth:`features`).

    Args:
        out_channels: FPN width (256 in torchvision).
        trainable_layers: how many of the 6 stages, counted from the top, are trained;
            every block before them is frozen (torchvision's default with ImageNet
            weights: 3).
        frozen_batch_norm: ``FrozenBatchNorm2d`` instead of ``nn.BatchNorm2d``.
        returned_layers: the stages (0-5) whose first block the FPN reads; torchvision's
            default is the last two, ``(4, 5)``.
    """

    name: str

    @staticmethod
    def features(norm_layer: NormLayer) -> nn.Sequential:
        """The network's blocks, input side first."""
        raise NotImplementedError

    def __init__(
        self,
        out_channels: int = 256,
        trainable_layers: int = 3,
        frozen_batch_norm: bool = True,
        returned_layers: tuple[int, ...] = (4, 5),
    ) -> None:
        features = self.features(batch_norm_layer(frozen_batch_norm))
        stage_indices = [
            0,
            *(i for i, block in enumerate(features) if getattr(block, "starts_stage", False)),
            len(features) - 1,
        ]
        check_trainable_layers(trainable_layers, len(stage_indices), self.name)
        returned = [stage_indices[stage] for stage in returned_layers]
        super().__init__(
            OrderedDict(features.named_children()),
            return_layers={str(index): str(level) for level, index in enumerate(returned)},
            in_channels_list=[features[index].out_channels for index in returned],
            out_channels=out_channels,
        )
        stage_bounds = pairwise([*stage_indices, len(features)])
        stages = [features[start:stop] for start, stop in stage_bounds]
        freeze_before(stages, trainable_layers)


class MobileNetV2FPNBackbone(MobileNetFPNBackbone):
    """MobileNetV2 + FPN; outputs ``"0"``, ``"1"`` (both stride 32) and ``"pool"`` (stride
    64). The stages start at blocks 0, 2, 4, 7, 14 and 18; the FPN reads blocks 14 and 18,
    and 3 trainable stages are blocks 7 onwards."""

    name = "mobilenet_v2_fpn"
    features = staticmethod(mobilenet_v2_features)
