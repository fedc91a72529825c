from collections import OrderedDict

import torch
import torch.nn.functional as F

from faster_rcnn.rpn.head import RPNHead


def test_output_shapes_per_level() -> None:
    head = RPNHead(in_channels=8, num_anchors=3)
    features = [torch.randn(2, 8, 10, 12), torch.randn(2, 8, 5, 6)]
    logits, deltas = head(features)
    assert [t.shape for t in logits] == [(2, 3, 10, 12), (2, 3, 5, 6)]
    assert [t.shape for t in deltas] == [(2, 12, 10, 12), (2, 12, 5, 6)]


def test_state_dict_keys_are_torchvision_s() -> None:
    assert list(RPNHead(4, 9, conv_depth=2).state_dict()) == [
        "conv.0.0.weight",
        "conv.0.0.bias",
        "conv.1.0.weight",
        "conv.1.0.bias",
        "cls_logits.weight",
        "cls_logits.bias",
        "bbox_pred.weight",
        "bbox_pred.bias",
    ]


def test_init_is_normal_001_with_zero_bias() -> None:
    torch.manual_seed(0)
    head = RPNHead(in_channels=64, num_anchors=9)
    for name, param in head.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(param) == 0, name
        else:
            assert abs(param.mean().item()) < 1e-3, name
            assert abs(param.std().item() - 0.01) < 0.001, name


def test_forward_is_conv_relu_then_siblings() -> None:
    torch.manual_seed(0)
    head = RPNHead(in_channels=4, num_anchors=2)
    for param in head.parameters():
        torch.nn.init.normal_(param)
    x = torch.randn(1, 4, 6, 5)
    conv = head.conv[0][0]
    hidden = F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1))
    expected_logits = F.conv2d(hidden, head.cls_logits.weight, head.cls_logits.bias)
    expected_deltas = F.conv2d(hidden, head.bbox_pred.weight, head.bbox_pred.bias)
    logits, deltas = head([x])
    torch.testing.assert_close(logits[0], expected_logits)
    torch.testing.assert_close(deltas[0], expected_deltas)


def test_loads_version_1_checkpoint_keys() -> None:
    source = RPNHead(4, 3)
    for param in source.parameters():
        torch.nn.init.normal_(param)
    old = OrderedDict(
        (key.replace("conv.0.0.", "conv."), value) for key, value in source.state_dict().items()
    )
    target = RPNHead(4, 3)
    target.load_state_dict(old, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_gradients_reach_every_parameter() -> None:
    head = RPNHead(in_channels=4, num_anchors=3)
    logits, deltas = head([torch.randn(1, 4, 5, 5)])
    (logits[0].sum() + deltas[0].sum()).backward()
    assert all(p.grad is not None for p in head.parameters())
