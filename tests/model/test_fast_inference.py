"""Inference-time rewrites: batch norms folded into convolutions, channels-last layout.

They change float rounding only: the rewritten detector must give the plain one's
detections (same count and labels, scores within 1e-4, boxes within 1e-4 of their size),
leave no batch norm behind in any preset, and leave the model it was made from untouched.
A batch norm whose input the folding cannot be sure is a convolution's output, and only
its, stays: a user's module computes what it did.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faster_rcnn import FasterRCNN, fast_inference, models
from faster_rcnn.backbones.fpn import IntermediateLayerGetter
from faster_rcnn.backbones.frozen_bn import FrozenBatchNorm2d
from faster_rcnn.fast_inference import fold_batch_norms, optimize_for_inference
from faster_rcnn.models import preset_config
from faster_rcnn.roi_heads import TwoMLPHead
from faster_rcnn.train.checkpoint import save_model
from spread_models import images_of_sizes, small_detector, spread_scores

NORMS = (FrozenBatchNorm2d, nn.BatchNorm2d)


def _norms(module: nn.Module) -> int:
    return sum(isinstance(m, NORMS) for m in module.modules())


def _random_norm(norm: nn.Module, generator: torch.Generator) -> nn.Module:
    channels = norm.running_mean.shape[0]
    with torch.no_grad():
        norm.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
        norm.bias.copy_(torch.randn(channels, generator=generator))
        norm.running_mean.copy_(torch.randn(channels, generator=generator))
        norm.running_var.copy_(torch.rand(channels, generator=generator) + 0.1)
    return norm


def test_a_folded_convolution_computes_conv_then_norm():
    generator = torch.Generator().manual_seed(0)
    block = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        _random_norm(FrozenBatchNorm2d(8), generator),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1),  # with a bias of its own
        _random_norm(nn.BatchNorm2d(4), generator).eval(),
    )
    x = torch.randn(2, 3, 10, 12, generator=generator)
    with torch.no_grad():
        expected = block(x)
        assert fold_batch_norms(block) == 2
        got = block(x)
    assert [type(m) for m in block] == [nn.Conv2d, nn.Identity, nn.ReLU, nn.Conv2d, nn.Identity]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


class PreActivationBlock(nn.Module):
    """He et al. 2016's pre-activation residual block,
    ``x + conv2(relu(bn2(conv1(relu(bn1(x))))))``: ``bn1`` normalises the block's input,
    before ``conv1``, and ``bn2`` reads ``conv1``'s output."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        out = self.conv1(F.relu(self.bn1(x)))
        return x + self.conv2(F.relu(self.bn2(out)))


class NormOnTheShortcut(nn.Module):
    """``conv1(x) + bn1(x)``: ``bn1`` normalises the block's input, not ``conv1``'s output."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        return self.conv1(x) + self.bn1(x)


class ConvIntoNormAndPast(NormOnTheShortcut):
    """``bn1(conv1(x)) + conv1(x)``: ``conv1``'s output goes to ``bn1`` and past it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        out = self.conv1(x)
        return self.bn1(out) + out


class SequentialOfItsOwn(nn.Sequential):
    """An ``nn.Sequential`` with a forward of its own: ``self[1](self[0](x)) + self[0](x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        out = self[0](x)
        return self[1](out) + out


class StandardisedConv2d(nn.Conv2d):
    """Weight standardisation (Qiao et al. 2019): each filter is brought to mean 0 and
    standard deviation 1 before it convolves, which undoes a scale folded into it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W)`` -> ``(N, C_out, H', W')``."""
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / w.std((1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


def _conv(channels: int = 4) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, padding=1)


def _hooked_conv() -> nn.Conv2d:
    conv = _conv()
    conv.register_forward_hook(lambda module, inputs, output: output.relu())
    return conv


def _conv_used_twice() -> nn.Sequential:
    conv = _conv()
    return nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU(), conv, nn.BatchNorm2d(4))


def _relu_in_two_slots() -> nn.Sequential:
    relu = nn.ReLU()  # named_children() lists it once: conv 2 and norm 4 look adjacent
    return nn.Sequential(_conv(), relu, _conv(), relu, nn.BatchNorm2d(4))


def _tied_weights() -> nn.Sequential:
    first, second = _conv(), _conv()
    second.weight = first.weight
    return nn.Sequential(first, nn.BatchNorm2d(4), nn.ReLU(), second)


# A module, and how many of its batch norms fold (the norm reads only a convolution's
# output, and only it reads that output).
FOLDING_CASES: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "pre-activation block": (lambda: PreActivationBlock(4), 0),
    "norm on the shortcut": (lambda: NormOnTheShortcut(4), 0),
    "conv into its norm and past it": (lambda: ConvIntoNormAndPast(4), 0),
    "sequential of its own": (lambda: SequentialOfItsOwn(_conv(), nn.BatchNorm2d(4)), 0),
    "returned conv of a layer getter": (
        lambda: IntermediateLayerGetter(
            {"conv": _conv(), "bn": nn.BatchNorm2d(4)}, {"conv": "0", "bn": "1"}
        ),
        0,
    ),
    "hooked conv": (lambda: nn.Sequential(_hooked_conv(), nn.BatchNorm2d(4)), 0),
    "conv used twice": (_conv_used_twice, 0),
    "one relu in two slots": (_relu_in_two_slots, 0),
    "standardised conv": (lambda: nn.Sequential(StandardisedConv2d(4, 4, 3), nn.BatchNorm2d(4)), 0),
    "norm of one channel": (lambda: nn.Sequential(_conv(), FrozenBatchNorm2d(1)), 0),
    "norm without running statistics": (
        lambda: nn.Sequential(_conv(), nn.BatchNorm2d(4, track_running_stats=False)),
        0,
    ),
    "norm without affine parameters": (
        lambda: nn.Sequential(_conv(), nn.BatchNorm2d(4, affine=False)),
        1,
    ),
    "weights tied to a later conv": (_tied_weights, 1),
}


def _randomised(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """``module`` in eval mode with every parameter and norm statistic drawn at random:
    normal, variances uniform in [0.5, 1.5)."""
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return module.eval()


def _values(output: torch.Tensor | dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return list(output.values()) if isinstance(output, dict) else [output]


@pytest.mark.parametrize("case", FOLDING_CASES)
def test_only_a_norm_that_reads_a_convolution_alone_is_folded(case):
    make, folds = FOLDING_CASES[case]
    generator = torch.Generator().manual_seed(0)
    module = _randomised(make(), generator)
    x = torch.randn(2, 4, 6, 7, generator=generator)
    with torch.no_grad():
        expected = _values(module(x))
        assert fold_batch_norms(module) == folds
        got = _values(module(x))
    assert _norms(module) == sum(isinstance(m, NORMS) for m in make().modules()) - folds
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


class PreActivationBackbone(nn.Module):
    """A user's backbone: a conv-BN-ReLU stem (stride 4), a pre-activation block, then a
    strided convolution; maps ``"0"`` (stride 4) and ``"1"`` (stride 8), 16 channels."""

    out_channels = 16

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 7, stride=4, padding=3, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.block = PreActivationBlock(16)
        self.down = nn.Conv2d(16, 16, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """``(N, 3, H, W)`` -> ``{"0": (N, 16, H / 4, W / 4), "1": (N, 16, H / 8, W / 8)}``."""
        fine = self.block(self.stem(x))
        return OrderedDict([("0", fine), ("1", self.down(fine))])


def test_a_pre_activation_backbone_gives_the_plain_detections():
    small = preset_config("small", 4)
    config = small.replace(
        backbone={"name": "custom", "out_channels": 16},
        anchors={
            "sizes": small.anchors.sizes[:2],
            "aspect_ratios": small.anchors.aspect_ratios[:2],
        },
        roi_heads={"featmap_names": ("0", "1")},
    )
    torch.manual_seed(0)
    model = FasterRCNN(PreActivationBackbone(), config)
    generator = torch.Generator().manual_seed(0)
    for norm in model.backbone.modules():
        if isinstance(norm, NORMS):
            _random_norm(norm, generator)
    fast = optimize_for_inference(spread_scores(model))
    # The stem's norm folds; bn1 runs before conv1, and bn2 is conv1's, not conv2's.
    assert isinstance(fast.backbone.stem[1], nn.Identity)
    assert _norms(fast.backbone.block) == 2
    _assert_same_detections(model, fast)


# Batch norms each preset folds: all it has, as before the folding refused what it
# cannot tell is a convolution's alone.
PRESET_FOLDS = {
    "paper_vgg16": 0,
    "resnet50_fpn": 53,
    "resnet50_fpn_v2": 65,
    "mobilenet_v2_fpn": 52,
    "mobilenet_v3_large_fpn": 46,
    "mobilenet_v3_large_320_fpn": 46,
    "small": 17,
}


@pytest.mark.parametrize("preset", PRESET_FOLDS)
def test_every_batch_norm_of_a_preset_is_folded(preset):
    model = getattr(models, preset)()
    fast = optimize_for_inference(model)
    assert _norms(model) == PRESET_FOLDS[preset]  # the original keeps its own
    assert _norms(fast) == 0


@pytest.mark.parametrize(
    "make",
    [
        small_detector,
        lambda: spread_scores(models.mobilenet_v3_large_320_fpn(5), reinit_backbone=True),
    ],
    ids=["small", "mobilenet_v3_large_320_fpn"],
)
@pytest.mark.parametrize(
    ("channels_last", "convolution_faster"), [(False, True), (True, True), (True, False)]
)
def test_rewritten_detector_gives_the_plain_detections(
    monkeypatch, make, channels_last, convolution_faster
):
    monkeypatch.setattr(
        fast_inference, "roi_convolution_is_faster", lambda device: convolution_faster
    )
    torch.manual_seed(0)
    model = make()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # batch norms that do something
        for norm in model.modules():
            if isinstance(norm, NORMS):
                _random_norm(norm, generator)
        spread_scores(model)
    fast = optimize_for_inference(model, channels_last=channels_last)
    # Channels-last, where that is faster, the box head's fc6 runs as a convolution over
    # the pooled RoIs.
    fc6 = fast.roi_heads.box_head.fc6
    assert isinstance(fc6, nn.Conv2d if channels_last and convolution_faster else nn.Linear)
    _assert_same_detections(model, fast)


def _assert_same_detections(model: FasterRCNN, fast: FasterRCNN) -> None:
    """Both detect the same objects in two images (rounding aside), and some."""
    images = images_of_sizes([(240, 320), (300, 200)])
    with torch.inference_mode():
        expected, got = model(images), fast(images)
    for g, e in zip(got, expected, strict=True):
        assert len(e["scores"]) > 0
        assert torch.equal(g["labels"], e["labels"])
        torch.testing.assert_close(g["scores"], e["scores"], atol=1e-4, rtol=0)
        torch.testing.assert_close(g["boxes"], e["boxes"], atol=1e-3, rtol=1e-4)


class FlatteningHead(TwoMLPHead):
    """A user's :class:`TwoMLPHead` with a forward of its own: it flattens the RoIs for
    fc6, which an fc6 made a convolution could not take."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(K, C, S, S)`` pooled RoIs -> ``(K, representation_size)`` features."""
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(start_dim=1)))))


class PoolerOfUntoldSide(nn.Module):
    """A user's wrapper of the RoI pooler, without its ``output_size``."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, *args: object) -> torch.Tensor:
        """The wrapped pooler's ``(K, C, S, S)`` RoIs."""
        return self.pool(*args)


def _with_flattening_head(model: FasterRCNN) -> FasterRCNN:
    head = model.roi_heads.box_head
    flattening = FlatteningHead(head.fc6.in_features, head.fc6.out_features)
    flattening.load_state_dict(head.state_dict())
    model.roi_heads.box_head = flattening
    return model


def _with_pooler_of_untold_side(model: FasterRCNN) -> FasterRCNN:
    model.roi_heads.box_roi_pool = PoolerOfUntoldSide(model.roi_heads.box_roi_pool)
    return model


@pytest.mark.parametrize("change", [_with_flattening_head, _with_pooler_of_untold_side])
def test_fc6_stays_linear_where_a_convolution_cannot_be_sure_to_compute_it(monkeypatch, change):
    monkeypatch.setattr(fast_inference, "roi_convolution_is_faster", lambda device: True)
    model = change(small_detector())
    fast = optimize_for_inference(model)
    assert type(fast.roi_heads.box_head.fc6) is nn.Linear
    _assert_same_detections(model, fast)


def test_rewriting_a_rewritten_detector_again_changes_nothing(monkeypatch):
    monkeypatch.setattr(fast_inference, "roi_convolution_is_faster", lambda device: True)
    fast = optimize_for_inference(small_detector())
    again = optimize_for_inference(fast)
    fc6 = again.roi_heads.box_head.fc6
    assert isinstance(fc6, nn.Conv2d) and torch.equal(
        fc6.weight, fast.roi_heads.box_head.fc6.weight
    )
    images = images_of_sizes([(240, 320)])
    with torch.inference_mode():
        expected, got = fast(images)[0], again(images)[0]
    assert len(expected["scores"]) > 0
    for key in ("boxes", "labels", "scores"):
        assert torch.equal(got[key], expected[key])


def test_a_rewritten_model_is_not_saved_as_a_checkpoint(tmp_path):
    fast = optimize_for_inference(small_detector())
    with pytest.raises(ValueError, match="rewritten for inference"):
        save_model(fast, tmp_path / "model.safetensors")


def test_a_rewritten_model_refuses_training_mode_and_keeps_eval_mode():
    fast = optimize_for_inference(small_detector())
    message = (
        r"^this model was rewritten for inference \(its batch norms are folded\): "
        r"train the model it was made from$"
    )
    with pytest.raises(ValueError, match=message):
        fast.train()
    with pytest.raises(ValueError, match=message):
        nn.Sequential(fast).train()
    assert not any(module.training for module in fast.modules())
    assert fast.eval() is fast and fast.train(False) is fast and not fast.training
