"""Box heads and the class/box predictor: shapes, key names, initialisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faster_rcnn.roi_heads import box_head
from faster_rcnn.roi_heads.box_head import ConvFCHead, TwoMLPHead, VGG16BoxHead
from faster_rcnn.roi_heads.predictor import FastRCNNPredictor


def test_two_mlp_head_shapes_keys_and_relu() -> None:
    torch.manual_seed(0)
    head = TwoMLPHead(4 * 3 * 3, 16)
    assert list(head.state_dict()) == ["fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"]
    assert head.fc6.weight.shape == (16, 36) and head.fc7.weight.shape == (16, 16)
    x = torch.randn(5, 4, 3, 3)
    out = head(x)
    assert out.shape == (5, 16)
    expected = torch.relu(head.fc7(torch.relu(head.fc6(x.reshape(5, 36)))))
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("convolution_faster", [True, False])
def test_two_mlp_head_on_channels_last_rois_is_the_same_function_and_gradient(
    monkeypatch, convolution_faster
) -> None:
    """Channels-last RoIs run fc6 as a 3x3 convolution where that is the faster way, and
    flattened otherwise: the flattened linear layer, to float rounding, either way, for
    the output and for every gradient."""
    monkeypatch.setattr(box_head, "roi_convolution_is_faster", lambda device: convolution_faster)
    convolutions = []
    monkeypatch.setattr(box_head.F, "conv2d", _recorded(F.conv2d, convolutions))
    torch.manual_seed(0)
    head = TwoMLPHead(4 * 3 * 3, 16).double()
    x = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    nhwc = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    nchw = x.clone().requires_grad_()
    outputs = {}
    for name, rois in (("nchw", nchw), ("nhwc", nhwc)):
        head.zero_grad()
        out = head(rois)
        out.pow(2).sum().backward()
        outputs[name] = (out, rois.grad, head.fc6.weight.grad.clone(), head.fc6.bias.grad.clone())
    assert len(convolutions) == int(convolution_faster)  # the NCHW RoIs never convolve
    for plain, convolved in zip(outputs["nchw"], outputs["nhwc"], strict=True):
        torch.testing.assert_close(convolved, plain, rtol=1e-12, atol=1e-12)
    assert outputs["nchw"][0].abs().sum() > 0


@pytest.mark.parametrize("extra", [0, 1])
def test_two_mlp_head_in_bfloat16_runs_few_rois_through_the_linear_layer(monkeypatch, extra):
    """Under bfloat16 autocast on a CPU, up to BFLOAT16_LINEAR_ROIS channels-last RoIs
    are flattened for fc6 even where the convolution is the faster way in float32; more
    RoIs convolve. Either way the result is fc6 in bfloat16, to its rounding."""
    monkeypatch.setattr(box_head, "roi_convolution_is_faster", lambda device: True)
    convolutions = []
    monkeypatch.setattr(box_head.F, "conv2d", _recorded(F.conv2d, convolutions))
    torch.manual_seed(0)
    head = TwoMLPHead(4 * 3 * 3, 16)
    count = box_head.BFLOAT16_LINEAR_ROIS + extra
    x = torch.randn(count, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(x)
    assert len(convolutions) == extra and out.dtype == torch.bfloat16
    bf16 = torch.bfloat16
    fc6, fc7 = ([p.to(bf16) for p in layer.parameters()] for layer in (head.fc6, head.fc7))
    hidden = torch.relu(F.linear(x.reshape(count, 36).to(bf16), *fc6))
    expected = torch.relu(F.linear(hidden, *fc7))
    tolerance = {} if extra else {"rtol": 0, "atol": 0}  # the linear layer: bit for bit
    torch.testing.assert_close(out, expected, **tolerance)


def _recorded(function, calls: list):
    def recorded(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return recorded


@pytest.mark.parametrize(
    ("device", "capability", "faster"),
    [
        ("cpu", "AVX512", True),
        ("cpu", "AVX2", False),
        ("cpu", "DEFAULT", False),
        ("cuda", "AVX512", False),
        ("meta", "AVX512", False),
    ],
)
def test_the_roi_convolution_is_taken_on_avx512_cpus_only(monkeypatch, device, capability, faster):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert box_head.roi_convolution_is_faster(torch.device(device)) is faster


def test_two_mlp_head_has_default_linear_init() -> None:
    # nn.Linear draws weights and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    torch.manual_seed(1)
    head = TwoMLPHead(400, 64)
    bound = 1 / math.sqrt(400)
    assert head.fc6.weight.abs().max() <= bound and head.fc6.bias.abs().max() <= bound
    assert head.fc6.weight.abs().max() > 0.9 * bound


def test_two_mlp_head_draws_weights_in_torchvision_order() -> None:
    torch.manual_seed(2)
    head = TwoMLPHead(12, 8)
    torch.manual_seed(2)
    fc6, fc7 = nn.Linear(12, 8), nn.Linear(8, 8)
    torch.testing.assert_close(head.fc6.weight, fc6.weight, rtol=0, atol=0)
    torch.testing.assert_close(head.fc7.bias, fc7.bias, rtol=0, atol=0)


def test_vgg16_head_matches_imagenet_classifier_shapes() -> None:
    with torch.device("meta"):
        head = VGG16BoxHead()
        classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096)
        )
    assert list(head.state_dict()) == ["fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"]
    renamed = {
        "fc6.weight": classifier[0].weight,
        "fc6.bias": classifier[0].bias,
        "fc7.weight": classifier[3].weight,
        "fc7.bias": classifier[3].bias,
    }
    head.load_state_dict(renamed, strict=True, assign=True)


def test_vgg16_head_drops_out_in_training_only() -> None:
    torch.manual_seed(3)
    head = VGG16BoxHead(2 * 7 * 7, 64, dropout=0.5)
    x = torch.randn(6, 2, 7, 7)
    head.eval()
    expected = torch.relu(head.fc7(torch.relu(head.fc6(x.flatten(1)))))
    torch.testing.assert_close(head(x), expected)
    head.train()
    out = head(x)
    assert out.shape == (6, 64)
    assert (out == 0).float().mean() > (expected == 0).float().mean() + 0.2


def test_predictor_shapes_and_keys() -> None:
    torch.manual_seed(4)
    predictor = FastRCNNPredictor(32, 5)
    assert list(predictor.state_dict()) == [
        "cls_score.weight",
        "cls_score.bias",
        "bbox_pred.weight",
        "bbox_pred.bias",
    ]
    x = torch.randn(7, 32)
    scores, deltas = predictor(x)
    assert scores.shape == (7, 5) and deltas.shape == (7, 20)
    scores4, deltas4 = predictor(x[:, :, None, None])
    torch.testing.assert_close(scores4, scores)
    torch.testing.assert_close(deltas4, deltas)
    with pytest.raises(ValueError, match=r"\(K, C, 1, 1\)"):
        predictor(torch.randn(7, 8, 2, 2))


def test_predictor_default_init_is_nn_linear() -> None:
    torch.manual_seed(5)
    predictor = FastRCNNPredictor(64, 3)
    torch.manual_seed(5)
    cls_score, bbox_pred = nn.Linear(64, 3), nn.Linear(64, 12)
    torch.testing.assert_close(predictor.cls_score.weight, cls_score.weight, rtol=0, atol=0)
    torch.testing.assert_close(predictor.bbox_pred.bias, bbox_pred.bias, rtol=0, atol=0)


def test_predictor_paper_init_is_gaussian_with_zero_bias() -> None:
    gen = torch.Generator().manual_seed(6)
    predictor = FastRCNNPredictor(1024, 21, init_std=0.01, generator=gen)
    cls_w, box_w = predictor.cls_score.weight, predictor.bbox_pred.weight
    assert abs(cls_w.std().item() - 0.01) < 0.0005
    assert abs(box_w.std().item() - 0.001) < 0.00005
    assert abs(cls_w.mean().item()) < 0.0005 and abs(box_w.mean().item()) < 0.00005
    assert (predictor.cls_score.bias == 0).all() and (predictor.bbox_pred.bias == 0).all()
    again = FastRCNNPredictor(1024, 21, init_std=0.01, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(again.cls_score.weight, cls_w, rtol=0, atol=0)


def test_conv_fc_head_is_torchvisions_fastrcnn_conv_fc_head() -> None:
    # torchvision's FastRCNNConvFCHead((C, S, S), [C] * 4, [R], norm_layer=BatchNorm2d):
    # keys 0..3 (conv, batch norm), 4 the flatten, 5 the linear layer; convs without bias.
    torch.manual_seed(3)
    head = ConvFCHead(in_channels=8, output_size=3, representation_size=16).eval()
    keys = list(head.state_dict())
    assert keys[:6] == [
        "0.0.weight",
        "0.1.weight",
        "0.1.bias",
        "0.1.running_mean",
        "0.1.running_var",
        "0.1.num_batches_tracked",
    ]
    assert keys[-2:] == ["5.weight", "5.bias"] and "3.0.weight" in keys and "4.0.weight" not in keys
    assert head[5].weight.shape == (16, 8 * 3 * 3)
    x = torch.randn(5, 8, 3, 3)
    expected = x
    for block in list(head)[:4]:
        conv, norm = block[0], block[1]
        expected = torch.relu(norm(F.conv2d(expected, conv.weight, padding=1)))
    expected = torch.relu(head[5](expected.flatten(1)))
    torch.testing.assert_close(head(x), expected)
