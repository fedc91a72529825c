"""Inference-time rewrites: batch norms folded into convolutions, channels-last layout.

They change float rounding only: the rewritten detector must give the plain one's
detections (same count and labels, scores within 1e-4, boxes within 1e-4 of their size),
leave no batch norm behind in any preset, and leave the model it was made from untouched.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faster_rcnn import fast_inference, models
from faster_rcnn.backbones.frozen_bn import FrozenBatchNorm2d
from faster_rcnn.fast_inference import fold_batch_norms, optimize_for_inference
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


@pytest.mark.parametrize(
    "preset",
    ["small", "resnet50_fpn", "resnet50_fpn_v2", "mobilenet_v2_fpn", "mobilenet_v3_large_fpn"],
)
def test_every_batch_norm_of_a_preset_is_folded(preset):
    model = getattr(models, preset)()
    before = _norms(model)
    fast = optimize_for_inference(model)
    assert before > 0 and _norms(fast) == 0
    assert _norms(model) == before  # the original keeps its own


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
    images = images_of_sizes([(240, 320), (300, 200)])
    with torch.inference_mode():
        expected, got = model(images), fast(images)
    for g, e in zip(got, expected, strict=True):
        assert len(e["scores"]) > 0
        assert torch.equal(g["labels"], e["labels"])
        torch.testing.assert_close(g["scores"], e["scores"], atol=1e-4, rtol=0)
        torch.testing.assert_close(g["boxes"], e["boxes"], atol=1e-3, rtol=1e-4)


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
