from collections import OrderedDict

import pytest
import torch
from torch import Tensor, nn

from faster_rcnn.config import AnchorConfig, BackboneConfig, FasterRCNNConfig, RPNConfig
from faster_rcnn.image_list import ImageList
from faster_rcnn.rpn import RegionProposalNetwork, concat_box_prediction_layers

CHANNELS = 8
SMALL_RPN = RPNConfig(
    pre_nms_top_n_train=200,
    pre_nms_top_n_test=100,
    post_nms_top_n_train=150,
    post_nms_top_n_test=50,
)


def fpn_batch(num_images: int = 2, seed: int = 0) -> tuple[ImageList, OrderedDict[str, Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    images = ImageList(torch.zeros(num_images, 3, 64, 96), [(60, 90), (64, 70)][:num_images])
    features = OrderedDict(
        (
            str(level),
            torch.randn(num_images, CHANNELS, 16 >> level, 24 >> level, generator=generator),
        )
        for level in range(4)
    )
    return images, features


def rpn_from(anchors: AnchorConfig, rpn: RPNConfig) -> RegionProposalNetwork:
    """The RPN of a model whose custom backbone gives ``CHANNELS``-channel features."""
    backbone = BackboneConfig(name="custom", out_channels=CHANNELS)
    config = FasterRCNNConfig(backbone=backbone, anchors=anchors, rpn=rpn)
    return RegionProposalNetwork.from_config(config)


def small_fpn_rpn(cfg: RPNConfig = SMALL_RPN) -> RegionProposalNetwork:
    torch.manual_seed(0)
    anchors = AnchorConfig(sizes=((8,), (16,), (32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    return rpn_from(anchors, cfg)


TARGETS = [
    {
        "boxes": torch.tensor([[5.0, 8.0, 40.0, 50.0], [50.0, 10.0, 80.0, 30.0]]),
        "labels": torch.tensor([1, 2]),
    },
    {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
]


def test_state_dict_keys() -> None:
    assert list(small_fpn_rpn().state_dict()) == [
        "head.conv.0.0.weight",
        "head.conv.0.0.bias",
        "head.cls_logits.weight",
        "head.cls_logits.bias",
        "head.bbox_pred.weight",
        "head.bbox_pred.bias",
    ]


def test_concat_box_prediction_layers_layout() -> None:
    n, a = 2, 3
    shapes = [(4, 5), (2, 3)]
    cls = [torch.randn(n, a, h, w) for h, w in shapes]
    reg = [torch.randn(n, 4 * a, h, w) for h, w in shapes]
    flat_cls, flat_reg = concat_box_prediction_layers(cls, reg)
    per_image = sum(h * w * a for h, w in shapes)
    assert flat_cls.shape == (n * per_image, 1) and flat_reg.shape == (n * per_image, 4)
    for image in range(n):
        row = image * per_image
        for level, (h, w) in enumerate(shapes):
            for y in range(h):
                for x in range(w):
                    for anchor in range(a):
                        assert flat_cls[row, 0] == cls[level][image, anchor, y, x]
                        expected = reg[level][image, 4 * anchor : 4 * anchor + 4, y, x]
                        assert torch.equal(flat_reg[row], expected)
                        row += 1


class OneHotHead(nn.Module):
    """Zero deltas and a single high logit at (level, anchor, y, x) of every image."""

    def __init__(self, num_anchors: int, where: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.where = where

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, deltas = [], []
        for level, f in enumerate(features):
            n, _, h, w = f.shape
            level_logits = torch.full((n, self.num_anchors, h, w), -5.0)
            if level == self.where[0]:
                level_logits[:, self.where[1], self.where[2], self.where[3]] = 5.0
            logits.append(level_logits)
            deltas.append(torch.zeros(n, 4 * self.num_anchors, h, w))
        return logits, deltas


def test_head_outputs_line_up_with_anchors() -> None:
    level, anchor, y, x = 1, 2, 3, 4
    anchors = AnchorConfig(sizes=((8,), (16,)), aspect_ratios=((0.5, 1.0, 2.0),) * 2, offset=0.5)
    rpn = rpn_from(anchors, RPNConfig())
    rpn.head = OneHotHead(3, (level, anchor, y, x))
    rpn.eval()
    images = ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)])
    features = {"0": torch.zeros(1, 1, 16, 16), "1": torch.zeros(1, 1, 8, 8)}
    boxes, scores = rpn.propose(images, features)
    # Level 1 has stride 8; anchor 2 is ratio 2 (h/w) of size 16: half-sizes 6 x 11.
    centre_x, centre_y = (x + 0.5) * 8, (y + 0.5) * 8
    expected = [centre_x - 6, centre_y - 11, centre_x + 6, centre_y + 11]
    assert boxes[0][0].tolist() == expected
    assert scores[0][0].item() == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())


def test_train_mode_losses_and_gradients() -> None:
    rpn = small_fpn_rpn()
    rpn.train()
    images, features = fpn_batch()
    boxes, losses = rpn(images, features, TARGETS)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_rpn_box_reg"] > 0
    assert all(len(b) <= SMALL_RPN.post_nms_top_n_train for b in boxes)
    assert not any(b.requires_grad for b in boxes)
    sum(losses.values()).backward()
    for name, param in rpn.named_parameters():
        assert param.grad is not None and torch.count_nonzero(param.grad) > 0, name


def test_eval_mode_proposals_bounded_and_inside_images() -> None:
    rpn = small_fpn_rpn()
    rpn.eval()
    images, features = fpn_batch()
    with torch.no_grad():
        boxes, losses = rpn(images, features)
        propose_boxes, scores = rpn.propose(images, features)
    assert losses == {}
    for image_boxes, image_scores, same, (height, width) in zip(
        boxes, scores, propose_boxes, images.image_sizes, strict=True
    ):
        assert 0 < len(image_boxes) <= SMALL_RPN.post_nms_top_n_test
        assert torch.equal(image_boxes, same)
        assert image_scores.shape == (len(image_boxes),)
        assert bool(((image_scores >= 0) & (image_scores <= 1)).all())
        assert bool((image_boxes[:, 0::2] >= 0).all() & (image_boxes[:, 0::2] <= width).all())
        assert bool((image_boxes[:, 1::2] >= 0).all() & (image_boxes[:, 1::2] <= height).all())


def test_proposal_limits_are_torchvision_s_dicts_read_and_set_per_mode() -> None:
    """torchvision's users read and set ``rpn._post_nms_top_n["testing"]``: the limits
    were tuples, which that indexing refused."""
    rpn = small_fpn_rpn()
    assert rpn._pre_nms_top_n == {"training": 200, "testing": 100}
    assert rpn._post_nms_top_n == {"training": 150, "testing": 50}
    assert (rpn.train().pre_nms_top_n(), rpn.post_nms_top_n()) == (200, 150)
    assert (rpn.eval().pre_nms_top_n(), rpn.post_nms_top_n()) == (100, 50)
    images, features = fpn_batch()
    with torch.no_grad():
        assert [len(b) for b in rpn(images, features)[0]] == [50, 50]
        rpn._post_nms_top_n["testing"] = 7
        assert [len(b) for b in rpn(images, features)[0]] == [7, 7]
        # One box a level before NMS: at most one proposal from each of the 4 levels.
        rpn._pre_nms_top_n = {"training": 200, "testing": 1}
        assert all(len(b) <= 4 for b in rpn(images, features)[0])
    assert rpn.proposal_limits() == {
        "pre_nms_top_n_train": 200,
        "pre_nms_top_n_test": 1,
        "post_nms_top_n_train": 150,
        "post_nms_top_n_test": 7,
    }
    # Refused where it is set: the forward pass failed on the mode missing (KeyError
    # 'training') or on an int ('int' object is not subscriptable).
    with pytest.raises(
        ValueError,
        match=r"^rpn\._post_nms_top_n must be a dict \{'training': n, 'testing': n\}, "
        r"got \{'testing': 7\}$",
    ):
        rpn._post_nms_top_n = {"testing": 7}
    with pytest.raises(ValueError, match=r"^rpn\._pre_nms_top_n must be a dict .* got 1000$"):
        rpn._pre_nms_top_n = 1000
    assert rpn.proposal_limits()["post_nms_top_n_test"] == 7


def test_proposal_limits_edited_in_place_are_checked_where_they_are_set() -> None:
    """``rpn._post_nms_top_n["testing"] = 0`` edited a plain dict: the RPN kept no
    proposal (and the model no detection) until ``model.config`` refused the limit at
    save; ``["test"] = 300`` (a mode that does not exist) changed nothing. A dict
    assigned whole is checked alike, and so are later edits of it."""
    rpn = small_fpn_rpn()
    with pytest.raises(ValueError, match=r"^rpn\._post_nms_top_n\['testing'\] = 0: must be >= 1$"):
        rpn._post_nms_top_n["testing"] = 0
    with pytest.raises(
        ValueError,
        match=r"^rpn\._pre_nms_top_n\['training'\] = 2\.5: must be an integer, got 2\.5$",
    ):
        rpn._pre_nms_top_n.update(training=2.5)
    with pytest.raises(
        ValueError,
        match=r"^rpn\._post_nms_top_n\['test'\]: the limits are those of 'training' and "
        r"'testing'$",
    ):
        rpn._post_nms_top_n["test"] = 300
    with pytest.raises(
        ValueError, match=r"^rpn\._post_nms_top_n\['testing'\] cannot be removed: set another"
    ):
        del rpn._post_nms_top_n["testing"]
    with pytest.raises(ValueError, match=r"^rpn\._pre_nms_top_n\['testing'\] = -5: must be >= 1$"):
        rpn._pre_nms_top_n = {"training": 200, "testing": -5}
    limits = {"training": 200, "testing": 30}
    rpn._pre_nms_top_n = limits
    with pytest.raises(ValueError, match=r"^rpn\._pre_nms_top_n\['testing'\] = None: "):
        rpn._pre_nms_top_n["testing"] = None
    assert rpn._pre_nms_top_n == limits and rpn._post_nms_top_n == {"training": 150, "testing": 50}
    assert rpn.proposal_limits()["pre_nms_top_n_test"] == 30


def test_batch_of_empty_images_has_zero_box_loss() -> None:
    rpn = small_fpn_rpn()
    rpn.train()
    images, features = fpn_batch()
    _, losses = rpn(images, features, [TARGETS[1], TARGETS[1]])
    assert losses["loss_rpn_box_reg"].item() == 0.0
    assert torch.isfinite(losses["loss_objectness"])
    sum(losses.values()).backward()


def test_same_generator_seed_same_losses() -> None:
    rpn = small_fpn_rpn()
    rpn.train()
    images, features = fpn_batch()
    first = rpn(images, features, TARGETS, generator=torch.Generator().manual_seed(7))[1]
    second = rpn(images, features, TARGETS, generator=torch.Generator().manual_seed(7))[1]
    assert all(torch.equal(first[k], second[k]) for k in first)
    torch.manual_seed(3)
    third = rpn(images, features, TARGETS)[1]
    torch.manual_seed(3)
    fourth = rpn(images, features, TARGETS)[1]
    assert all(torch.equal(third[k], fourth[k]) for k in third)


@pytest.mark.parametrize(
    "cfg",
    [
        RPNConfig(sampler="hard_negative"),
        RPNConfig(loss_normalization="paper", box_loss_weight=10.0, allowed_border=0),
    ],
)
def test_other_policies_train(cfg: RPNConfig) -> None:
    rpn = small_fpn_rpn(cfg)
    rpn.train()
    images, features = fpn_batch()
    _, losses = rpn(images, features, TARGETS)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_paper_single_level_rpn() -> None:
    anchors = AnchorConfig(sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),), offset=0.5)
    cfg = RPNConfig(allowed_border=0, loss_normalization="paper", box_loss_weight=10.0)
    torch.manual_seed(0)
    rpn = rpn_from(anchors, cfg)
    rpn.train()
    images = ImageList(torch.zeros(1, 3, 608, 800), [(600, 800)])
    features = {"0": torch.randn(1, CHANNELS, 38, 50)}
    targets = [{"boxes": torch.tensor([[100.0, 100.0, 400.0, 350.0]])}]
    prediction = rpn.predict(images, features)
    assert prediction.num_anchor_locations == 38 * 50
    assert prediction.anchors[0].shape == (38 * 50 * 9, 4)
    losses = rpn.compute_loss(prediction, targets, images)
    assert all(torch.isfinite(v) for v in losses.values())


def test_errors() -> None:
    rpn = small_fpn_rpn()
    rpn.train()
    images, features = fpn_batch()
    with pytest.raises(ValueError, match="targets"):
        rpn(images, features)
    with pytest.raises(ValueError, match="same number of anchors"):
        AnchorConfig(sizes=((8,), (16, 32)), aspect_ratios=((1.0,), (1.0,)))
    with pytest.raises(ValueError, match="sampler"):
        RPNConfig(sampler="ohem")
