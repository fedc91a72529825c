"""The per-RoI feature extractor between RoI pooling and the class/box predictor."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.conv_norm_act import Conv2dNormActivation
from ..ops.autocast import runs_in_bfloat16
from ..ops.roi_align import memory_format_of


class TwoMLPHead(nn.Module):
    """Two fully connected layers with ReLU, torchvision's box head for FPN models.

    Args:
        in_channels: size of a flattened pooled RoI (``C * 7 * 7``).
        representation_size: width of both layers (1024).

    The layers keep ``nn.Linear``'s default initialisation, as torchvision does.
    """

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        """``(K, C, S, S)`` pooled RoIs -> ``(K, representation_size)`` features."""
        x = F.relu(_on_pooled_rois(self.fc6, x))
        return F.relu(self.fc7(x))


# In bfloat16 oneDNN runs fc6 either way, and the convolution pays a fixed cost a call
# (the kernel's reorder, its gradient's back) that more RoIs amortise. On a Zen 4 EPYC,
# one thread, forward and backward: 512 RoIs (a step of 4 images at the recipe's 128)
# 298 ms as a matrix product against 349 ms as a convolution, 1024 RoIs 563 against 638,
# 2048 RoIs (the presets' 512 an image) 1145 against 1074. A mobilenet_v2_fpn step of
# 512 RoIs was 2.5 % shorter on 2 threads, 3.7 % on one (benchmarks/bfloat16_kernels.py;
# benchmarks/recipe_ab.md, round 26).
BFLOAT16_LINEAR_ROIS = 1024


def _on_pooled_rois(layer: nn.Linear | nn.Conv2d, x: Tensor) -> Tensor:
    """``layer`` on ``(K, C, S, S)`` pooled RoIs, flattened: ``(K, out_features)``.

    Channels-last RoIs (pooled from channels-last maps), where
    :func:`roi_convolution_is_faster`, run the linear layer as an ``S x S`` convolution
    with its weights viewed ``(out_features, C, S, S)``: the same sums, rounded otherwise,
    without flattening the RoIs into NCHW order first. Other RoIs take torchvision's
    exact path, a flatten and ``F.linear``, as do up to :data:`BFLOAT16_LINEAR_ROIS` RoIs
    in bfloat16 (see there). A layer that
    :func:`~faster_rcnn.fast_inference.optimize_for_inference` already turned into that
    convolution runs as it is.
    """
    if isinstance(layer, nn.Conv2d):
        return layer(x).flatten(start_dim=1)
    few_in_bfloat16 = x.shape[0] <= BFLOAT16_LINEAR_ROIS and runs_in_bfloat16(x)
    convolution = memory_format_of(x) == torch.channels_last and not few_in_bfloat16
    if not (convolution and roi_convolution_is_faster(x.device)):
        return layer(x.flatten(start_dim=1))
    kernel = as_roi_kernel(layer.weight, x.shape[1:])
    return F.conv2d(x, kernel, layer.bias).flatten(start_dim=1)


def roi_convolution_is_faster(device: torch.device) -> bool:
    """Whether fc6 over channels-last RoIs runs faster as an ``S x S`` convolution than as
    a flatten and a matrix product: on a CPU with AVX-512 only.

    There oneDNN's AVX-512 convolution ran 1000 RoIs of 256 x 7 x 7 into 1024 features in
    59 ms against 124 ms for the matrix product (MKL's, whose AVX2 path is what runs on
    AMD CPUs). On an AVX2-only CPU (AMD EPYC, Zen 3) oneDNN's convolution for that shape
    (``brg_conv_fwd:avx2``) took 2.1 s forward and 8.1 s with the backward pass for 1024
    RoIs, against 0.18 s and 0.59 s for the flatten and the matrix product: a
    ``mobilenet_v2_fpn`` training step took 11.0 s instead of 2.0 s. On a Zen 4 EPYC
    (AVX-512, family 25 model 17) the convolution lost a little: 512 RoIs 74-79 ms forward
    and 199-282 ms backward against 72-76 and 165-174 ms (two passes), a step on the slides
    1.61-1.63 s against 1.57 s (3 %). Elsewhere (CUDA, other CPUs) nothing was measured,
    so torchvision's path stays.
    """
    return device.type == "cpu" and torch.backends.cpu.get_cpu_capability() == "AVX512"


def as_roi_kernel(weight: Tensor, roi_shape: Sequence[int]) -> Tensor:
    """``(out, C * S * S)`` linear weights as the ``(out, C, S, S)`` channels-last kernel
    of the convolution that computes them over ``(C, S, S)`` RoIs."""
    return weight.view(-1, *roi_shape).contiguous(memory_format=torch.channels_last)


class VGG16BoxHead(nn.Module):
    """VGG-16's fully connected layers fc6 and fc7, as the paper's Fast R-CNN uses them.

    fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout. The layers are named ``fc6`` and
    ``fc7`` and have the shapes of the ImageNet VGG-16 classifier's ``classifier.0`` and
    ``classifier.3``, so those pretrained weights load into them; RoI pooling to 7x7 over
    conv5_3's 512 channels gives exactly the input fc6 was trained on.

    Args:
        in_channels: size of a flattened pooled RoI (``512 * 7 * 7``).
        representation_size: width of both layers (4096).
        dropout: drop probability after each layer (0.5; active in training only).
    """

    def __init__(
        self, in_channels: int = 512 * 7 * 7, representation_size: int = 4096, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``(K, C, S, S)`` pooled RoIs -> ``(K, representation_size)`` features."""
        x = x.flatten(start_dim=1)
        x = self.dropout(F.relu(self.fc6(x)))
        return self.dropout(F.relu(self.fc7(x)))


class ConvFCHead(nn.Sequential):
    """3x3 convs with batch norm and ReLU, then fully connected layers with ReLU:
    torchvision's ``FastRCNNConvFCHead``, the box head of ``fasterrcnn_resnet50_fpn_v2``
    (four convs of 256 channels, one layer of 1024). Keys ``0.0.weight`` (first conv),
    ``0.1.*`` (its batch norm) ... ``5.weight`` (the layer after the flatten at 4). Maps
    ``(K, C, S, S)`` pooled RoIs to ``(K, representation_size)`` features.

    Args:
        in_channels: channels of a pooled RoI (the FPN's width).
        output_size: side of a pooled RoI (7).
        representation_size: width of the fully connected layer.
        num_convs: how many convs, each keeping ``in_channels`` channels.
    """

    def __init__(
        self, in_channels: int, output_size: int, representation_size: int, num_convs: int = 4
    ) -> None:
        layers: list[nn.Module] = [
            Conv2dNormActivation(in_channels, in_channels, 3, norm_layer=nn.BatchNorm2d)
            for _ in range(num_convs)
        ]
        layers += [
            nn.Flatten(),
            nn.Linear(in_channels * output_size**2, representation_size),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*layers)
        # Without convs the layer's C * S * S inputs do not tell the channels from the
        # grid: kept to describe the head as made (faster_rcnn.torchvision_heads).
        self.in_channels, self.output_size = in_channels, output_size
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def check_head_fits_pooled(head: nn.Module, pooled: Sequence[int]) -> None:
    """A box head of this package's classes must take the RoIs the pooler gives,
    ``pooled`` = ``(C, S, S)``: one set as ``roi_heads.box_roi_pool`` with another grid
    needs a head of that grid (as ``rpn.anchor_generator`` needs an RPN head of its
    anchors). A head of another class, or whose first layer
    :func:`~faster_rcnn.fast_inference.optimize_for_inference` made a convolution, is not
    checked.

    Raises:
        ValueError: naming both sizes and the head to set.
    """
    if isinstance(head, ConvFCHead):
        layer = head[-2]  # the layer after the flatten
    elif isinstance(head, (TwoMLPHead, VGG16BoxHead)):
        layer = head.fc6
    else:
        return
    if len(pooled) != 3:  # a pooler of the user's own, giving other than (C, S, S)
        return
    channels, height, width = pooled
    values = channels * height * width
    if not isinstance(layer, nn.Linear) or layer.in_features == values:
        return
    if isinstance(head, ConvFCHead):
        convs = len(head) - 3
        more = "" if convs == 4 else f", num_convs={convs}"  # 4: the default, torchvision's
        replacement = f"ConvFCHead({channels}, {height}, {layer.out_features}{more})"
    else:
        replacement = f"{type(head).__name__}({values}, {layer.out_features})"
    raise ValueError(
        f"roi_heads.box_head takes pooled RoIs of {layer.in_features} values but "
        f"roi_heads.box_roi_pool gives {channels} x {height} x {width} = {values}: replace "
        f"the head as well (model.roi_heads.box_head = {replacement})"
    )
