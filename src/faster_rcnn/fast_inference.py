"""Inference-time rewrites of a trained detector that keep its answers.

A frozen (or eval-mode) batch norm after a convolution is an affine map per output
channel, ``y = conv(x) * scale + shift``, so it can be folded into the convolution's
weights and bias: one pass over the feature map instead of three. Channels-last memory
layout lets the CPU's convolution kernels (oneDNN) run without reordering each feature map.
Both change only float rounding: the detections agree with the plain model's to
within it (``tests/model/test_fast_inference.py``; against torchvision,
``tests/parity``). ``torch.compile`` of the backbone is not among the rewrites: on a CPU
it was no faster (0.91-1.11 times, ``benchmarks/bench_end_to_end.py --arms
ours_compiled``) and its first call compiles for half a minute.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from .backbones.frozen_bn import FrozenBatchNorm2d
from .model import FasterRCNN
from .roi_heads.box_head import TwoMLPHead, as_roi_kernel, roi_convolution_is_faster

_NORMS = (FrozenBatchNorm2d, nn.BatchNorm2d)


def optimize_for_inference(model: FasterRCNN, channels_last: bool = True) -> FasterRCNN:
    """A copy of ``model`` for inference: batch norms folded, channels-last convolutions.

    The copy is in eval mode and meant for inference only: its batch norms are gone, so
    it cannot be trained (``train()`` raises ``ValueError``) or saved as a checkpoint
    (train and save ``model`` itself).

    Args:
        model: the detector; left unchanged.
        channels_last: also store the weights and run the backbone channels-last.

    Returns:
        The rewritten copy.
    """
    fast = copy.deepcopy(model).eval()  # the batch norms fold their eval statistics
    fold_batch_norms(fast)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
        fast.memory_format = torch.channels_last
        _box_head_fc6_as_convolution(fast)
    fast.eval()  # the modules the rewrites added too
    fast.inference_only = True
    return fast


@torch.no_grad()
def _box_head_fc6_as_convolution(model: FasterRCNN) -> None:
    """Replace a :class:`TwoMLPHead`'s fc6 by the convolution that computes it over
    channels-last RoIs (see ``roi_heads.box_head``), its kernel laid out once rather than
    on every call (51 MB for ``resnet50_fpn``: 20 ms a detection); only on a device where
    that convolution is the faster way (:func:`roi_convolution_is_faster`), and only once
    (a model rewritten before has the convolution already)."""
    head = model.roi_heads.box_head
    if not (isinstance(head, TwoMLPHead) and isinstance(head.fc6, nn.Linear)):
        return
    if not roi_convolution_is_faster(head.fc6.weight.device):
        return
    side = model.roi_heads.box_roi_pool.output_size
    channels = head.fc6.in_features // (side[0] * side[1])
    conv = nn.Conv2d(channels, head.fc6.out_features, side)
    conv.weight = nn.Parameter(as_roi_kernel(head.fc6.weight, (channels, *side)))
    conv.bias = head.fc6.bias
    head.fc6 = conv


def fold_batch_norms(module: nn.Module) -> int:
    """Fold every batch norm that directly follows a convolution into it, in place.

    A pair is a convolution and a batch norm that are consecutive children of an
    ``nn.Sequential``, or children named ``convK`` and ``bnK`` (ResNet's blocks and stem);
    the batch norm becomes ``nn.Identity``. ``nn.BatchNorm2d`` folds with its running
    statistics (its eval-mode function).

    Returns:
        The number of batch norms folded.
    """
    folded = 0
    for parent in list(module.modules()):
        for conv_name, norm_name in _conv_norm_pairs(parent):
            conv, norm = getattr(parent, conv_name), getattr(parent, norm_name)
            _fold_into(conv, norm)
            setattr(parent, norm_name, nn.Identity())
            folded += 1
    return folded


def _conv_norm_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    """Names of the (convolution, batch norm) children of ``parent`` that run in a row."""
    children = dict(parent.named_children())
    if isinstance(parent, nn.Sequential):
        names = list(children)
        candidates = itertools.pairwise(names)
    else:
        candidates = ((name, "bn" + name[4:]) for name in children if name.startswith("conv"))
    return [
        (conv, norm)
        for conv, norm in candidates
        if isinstance(children.get(conv), nn.Conv2d) and isinstance(children.get(norm), _NORMS)
    ]


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, norm: nn.Module) -> None:
    """``norm(conv(x))`` as one convolution: weights scaled per output channel, the shift
    added to the bias (computed in float64, then rounded once)."""
    scale = norm.weight.double() * (norm.running_var.double() + norm.eps).rsqrt()
    shift = norm.bias.double() - norm.running_mean.double() * scale
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
    conv.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype))
