"""Feature pyramid (Lin et al. 2017) on top of a backbone's intermediate feature maps.

Module structure and parameter names are torchvision's (``BackboneWithFPN`` =
``body`` + ``fpn``; ``FeaturePyramidNetwork`` with ``inner_blocks`` / ``layer_blocks``), so
torchvision detection checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from faster_rcnn.backbones.conv_norm_act import Conv2dNormActivation
from faster_rcnn.backbones.frozen_bn import NormLayer


class IntermediateLayerGetter(nn.ModuleDict):
    """Runs named layers in order and returns the outputs of some of them.

    Layers after the last returned one are dropped (they would never be used), so a
    classifier's pooling and fully connected layers do not appear in the state dict.

    Args:
        layers: the network's layers, in execution order, by name.
        return_layers: ``{layer name: output name}`` of the feature maps to return.
    """

    def __init__(self, layers: Mapping[str, nn.Module], return_layers: Mapping[str, str]) -> None:
        absent = set(return_layers) - set(layers)
        if absent:
            raise ValueError(f"return_layers {sorted(absent)} are not layers of the model")
        kept: OrderedDict[str, nn.Module] = OrderedDict()
        remaining = set(return_layers)
        for name, layer in layers.items():
            kept[name] = layer
            remaining.discard(name)
            if not remaining:
                break
        super().__init__(kept)
        self.return_layers = dict(return_layers)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``(N, C, H, W)`` image batch -> the requested feature maps, in layer order."""
        outputs: OrderedDict[str, Tensor] = OrderedDict()
        for name, layer in self.items():
            x = layer(x)
            if name in self.return_layers:
                outputs[self.return_layers[name]] = x
        return outputs


class LastLevelMaxPool(nn.Module):
    """Adds a ``"pool"`` level: the coarsest FPN map subsampled by 2 (P6 in Faster R-CNN FPN)."""

    def forward(
        self, results: list[Tensor], inputs: list[Tensor], names: list[str]
    ) -> tuple[list[Tensor], list[str]]:
        """Appends ``max_pool2d(results[-1], kernel 1, stride 2)`` (size ``ceil(H/2), ceil(W/2)``).

        Args:
            results: FPN outputs, finest first, each ``(N, C, H_i, W_i)``.
            inputs: the backbone feature maps the FPN was computed from (unused here).
            names: the names of ``results``.
        """
        return [*results, F.max_pool2d(results[-1], 1, 2, 0)], [*names, "pool"]


class FeaturePyramidNetwork(nn.Module):
    """Top-down pathway with lateral connections.

    For each input level ``i`` a 1x1 conv (``inner_blocks[i]``) projects the backbone map
    to ``out_channels``; starting from the coarsest level, the running top-down map is
    upsampled (nearest neighbour, to the lateral's exact size, so odd sizes work) and added
    to the next finer lateral; each sum goes through a 3x3 conv (``layer_blocks[i]``).

    Args:
        in_channels_list: channels of each input level, finest first.
        out_channels: channels of every output level.
        extra_blocks: optional module adding levels (``LastLevelMaxPool``).
        norm_layer: normalisation after each conv (``fasterrcnn_resnet50_fpn_v2``: batch
            norm; the convs then have no bias), or ``None``.
    """

    # Version 2 wraps each conv in a Conv2dNormActivation (keys gain a ".0"); older
    # checkpoints, such as torchvision's fasterrcnn_resnet50_fpn COCO weights, are
    # renamed on load.
    _version = 2

    def __init__(
        self,
        in_channels_list: list[int],
        out_channels: int,
        extra_blocks: LastLevelMaxPool | None = None,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if not in_channels_list or min(in_channels_list) <= 0:
            raise ValueError(f"in_channels_list must be positive, got {in_channels_list}")
        self.inner_blocks = nn.ModuleList(
            Conv2dNormActivation(c, out_channels, 1, norm_layer=norm_layer, activation_layer=None)
            for c in in_channels_list
        )
        self.layer_blocks = nn.ModuleList(
            Conv2dNormActivation(
                out_channels, out_channels, 3, norm_layer=norm_layer, activation_layer=None
            )
            for _ in in_channels_list
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
        self.extra_blocks = extra_blocks

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        version = local_metadata.get("version")
        if version is None or version < 2:
            for block in ("inner_blocks", "layer_blocks"):
                for i in range(len(self.inner_blocks)):
                    for kind in ("weight", "bias"):
                        old_key = f"{prefix}{block}.{i}.{kind}"
                        if old_key in state_dict:
                            state_dict[f"{prefix}{block}.{i}.0.{kind}"] = state_dict.pop(old_key)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, features: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
        """Feature pyramid of the backbone's maps.

        Args:
            features: ``{name: (N, C_i, H_i, W_i)}``, finest level first, ``C_i`` matching
                ``in_channels_list``.

        Returns:
            ``{name: (N, out_channels, H_i, W_i)}`` with the same names (plus those the
            extra block adds), finest first.
        """
        names = list(features.keys())
        inputs = list(features.values())
        if len(inputs) != len(self.inner_blocks):
            raise ValueError(
                f"the FPN was built for {len(self.inner_blocks)} levels, got {len(inputs)}"
            )
        laterals = [block(x) for block, x in zip(self.inner_blocks, inputs, strict=True)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            top_down = F.interpolate(merged[0], size=lateral.shape[-2:], mode="nearest")
            merged.insert(0, lateral + top_down)
        results = [block(x) for block, x in zip(self.layer_blocks, merged, strict=True)]
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, inputs, names)
        return OrderedDict(zip(names, results, strict=True))


class BackboneWithFPN(nn.Module):
    """A backbone's intermediate maps (``body``) followed by a feature pyramid (``fpn``).

    Args:
        layers: the backbone's layers in execution order, by name.
        return_layers: ``{layer name: output name}`` of the maps fed to the FPN, finest first.
        in_channels_list: channels of those maps.
        out_channels: FPN width; every output has this many channels.
        fpn_norm_layer: the FPN's normalisation (see :class:`FeaturePyramidNetwork`).

    Attributes:
        out_channels: channels of every output map.
    """

    def __init__(
        self,
        layers: Mapping[str, nn.Module],
        return_layers: Mapping[str, str],
        in_channels_list: list[int],
        out_channels: int,
        fpn_norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(layers, return_layers)
        self.fpn = FeaturePyramidNetwork(
            in_channels_list, out_channels, LastLevelMaxPool(), norm_layer=fpn_norm_layer
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``(N, 3, H, W)`` images -> ``{name: (N, out_channels, H_i, W_i)}``, finest first."""
        return self.fpn(self.body(x))
