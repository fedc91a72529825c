"""Inference-time rewrites of a trained detector that keep its answers.

A frozen (or eval-mode) batch norm after a convolution is an affine map per output
channel, ``y = conv(x) * scale + shift``, so it can be folded into the convolution's
weights and bias: one pass over the feature map instead of three. It is folded only
where the forward that runs the two is known to give the convolution's output to the
norm alone (:func:`fold_batch_norms`): a user's block may name a norm ``bn1`` and run it
before ``conv1``, or on another input. Channels-last memory layout lets the CPU's
convolution kernels (oneDNN) run without reordering each feature map. Both change only
float rounding: the detections agree with the plain model's to within it
(``tests/model/test_fast_inference.py``; against torchvision, ``tests/parity``).
``torch.compile`` of the backbone is not among the rewrites: on a CPU it was no faster
(0.91-1.11 times, ``benchmarks/bench_end_to_end.py --arms ours_compiled``) and its first
call compiles for half a minute.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable

import torch
from torch import nn

from .backbones.fpn import IntermediateLayerGetter
from .backbones.frozen_bn import FrozenBatchNorm2d
from .backbones.resnet import Bottleneck
from .backbones.training_conv import ConvSequence
from .model import FasterRCNN
from .roi_heads.box_head import TwoMLPHead, as_roi_kernel, roi_convolution_is_faster

_NORMS = (FrozenBatchNorm2d, nn.BatchNorm2d)
# Forwards that run the children in order, each on the output of the one before alone
# (a ConvSequence in eval mode as nn.Sequential does: training_conv.run_layers).
_CHAIN_FORWARDS = (nn.Sequential.forward, ConvSequence.forward)
# Forwards of the package's blocks that pass each named convolution's output to the
# named norm and to nothing else: (convolution, norm) children.
_BLOCK_PAIRS: dict[Callable[..., object], tuple[tuple[str, str], ...]] = {
    Bottleneck.forward: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
}


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
    (a model rewritten before has the convolution already). A head with a forward of its
    own, an fc6 other than a plain ``nn.Linear`` without hooks, or RoIs of a side the
    pooler does not tell, keep the linear layer."""
    head = model.roi_heads.box_head
    if _forward_of(head) is not TwoMLPHead.forward:
        return
    fc6 = head.fc6
    if (
        type(fc6) is not nn.Linear
        or _hooked(fc6)
        or not roi_convolution_is_faster(fc6.weight.device)
    ):
        return
    roi_shape = _pooled_roi_shape(model.roi_heads.box_roi_pool, fc6.in_features)
    if roi_shape is None:
        return
    conv = nn.Conv2d(roi_shape[0], fc6.out_features, roi_shape[1:])
    conv.weight = nn.Parameter(as_roi_kernel(fc6.weight, roi_shape))
    conv.bias = fc6.bias
    head.fc6 = conv


def _pooled_roi_shape(pool: nn.Module, features: int) -> tuple[int, int, int] | None:
    """``(C, S_h, S_w)`` of the RoIs ``pool`` gives a layer of ``features`` inputs: its
    ``output_size`` (a side or a pair), ``None`` where it has none or ``features`` is not
    a whole number of channels of it."""
    size = getattr(pool, "output_size", None)
    side = (size, size) if isinstance(size, int) else size
    if not (isinstance(side, tuple | list) and len(side) == 2):
        return None
    if not all(isinstance(length, int) and length > 0 for length in side):
        return None
    channels, rest = divmod(features, side[0] * side[1])
    return (channels, side[0], side[1]) if rest == 0 else None


def fold_batch_norms(module: nn.Module) -> int:
    """Fold every batch norm that reads a convolution's output, and is all that reads it,
    into that convolution, in place; the batch norm becomes ``nn.Identity``.

    A pair folds only where the forward that runs it is known to compute
    ``norm(conv(x))`` and to use ``conv(x)`` nowhere else: consecutive children of a
    module that runs ``nn.Sequential``'s forward (or :class:`ConvSequence`'s), consecutive
    layers of an :class:`IntermediateLayerGetter` but for those it returns, and ``convK``
    and ``bnK`` of ResNet's :class:`Bottleneck`. And only a plain ``nn.Conv2d`` held once
    in ``module`` with a :class:`FrozenBatchNorm2d` or an ``nn.BatchNorm2d`` with running
    statistics, of the convolution's ``out_channels``, neither with forward hooks. Any
    other norm is left as it is (a user's block whose ``bn1`` runs before ``conv1``, say),
    so ``module`` computes what it did, rounding aside. ``nn.BatchNorm2d`` folds with its
    running statistics (its eval-mode function).

    Returns:
        The number of batch norms folded.
    """
    holders = Counter(child for _, child in module.named_modules(remove_duplicate=False))
    folded = 0
    for parent in list(module.modules()):
        for conv_name, norm_name in _conv_norm_pairs(parent):
            conv, norm = parent._modules[conv_name], parent._modules[norm_name]
            if holders[conv] == 1 and _folds_exactly(conv, norm):
                _fold_into(conv, norm)
                setattr(parent, norm_name, nn.Identity())
                folded += 1
    return folded


def _conv_norm_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    """Names ``(first, then)`` of children of ``parent`` whose forward passes ``first``'s
    output to ``then`` and to nothing else: where a convolution and its norm may be."""
    forward = _forward_of(parent)
    # Every slot, in order: named_children() skips a module's second slot.
    pairs = list(itertools.pairwise(parent._modules))
    if forward in _CHAIN_FORWARDS:
        return pairs
    if forward is IntermediateLayerGetter.forward:
        return [(first, then) for first, then in pairs if first not in parent.return_layers]
    return list(_BLOCK_PAIRS.get(forward, ()))


def _forward_of(module: nn.Module) -> Callable[..., object] | None:
    """The forward function of ``module``'s class, or ``None`` where ``module`` has one of
    its own."""
    return None if "forward" in vars(module) else type(module).forward


def _folds_exactly(conv: nn.Module, norm: nn.Module) -> bool:
    """Whether ``norm(conv(x))`` is a convolution with other weights: a plain convolution
    and a batch norm of its output channels with fixed statistics, and no hook that could
    see or change what either computes."""
    if _hooked(conv) or _hooked(norm) or type(conv) is not nn.Conv2d or type(norm) not in _NORMS:
        return False
    # Without running statistics an eval-mode nn.BatchNorm2d normalises by the batch's.
    statistics = norm.running_mean
    return statistics is not None and tuple(statistics.shape) == (conv.out_channels,)


def _hooked(module: nn.Module) -> bool:
    """Whether ``module`` has a forward hook, which may see or change what it computes."""
    return bool(module._forward_hooks or module._forward_pre_hooks)


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, norm: nn.Module) -> None:
    """``norm(conv(x))`` as one convolution: weights scaled per output channel, the shift
    added to the bias (computed in float64, then rounded once). The weights are new
    tensors, not the old ones overwritten: another layer may share them."""
    scale, shift = _scale_and_shift(norm)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
    dtype, trained = conv.weight.dtype, conv.weight.requires_grad
    conv.weight = nn.Parameter((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(dtype), trained)
    conv.bias = nn.Parameter((bias * scale + shift).to(dtype))


def _scale_and_shift(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C,)`` float64 scale and shift with ``norm(x) = x * scale + shift`` (an
    ``nn.BatchNorm2d`` without affine parameters: weight 1, bias 0)."""
    mean, variance = norm.running_mean.double(), norm.running_var.double()
    weight = norm.weight.double() if norm.weight is not None else torch.ones_like(mean)
    bias = norm.bias.double() if norm.bias is not None else torch.zeros_like(mean)
    scale = weight * (variance + norm.eps).rsqrt()
    return scale, bias - mean * scale
