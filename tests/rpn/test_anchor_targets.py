import functools
import sys

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.anchors import anchors_crossing_border
from faster_rcnn.config import FasterRCNNConfig
from faster_rcnn.insight.anchor_coverage import PaddedBatchAnchors
from faster_rcnn.models import PRESETS, preset_config
from faster_rcnn.ops.boxes import box_iou
from faster_rcnn.rpn import anchor_targets
from faster_rcnn.rpn.anchor_targets import AnchorTargetCreator
from faster_rcnn.samplers import BalancedPositiveNegativeSampler, HardNegativeSampler
from faster_rcnn.transform import padded_size
from peak_memory import peak_rise_mb

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
BIG_IMAGE = (1000, 1000)


def creator(**kwargs: float | bool) -> AnchorTargetCreator:
    defaults = {"fg_iou_thresh": 0.7, "bg_iou_thresh": 0.3}
    return AnchorTargetCreator(**{**defaults, **kwargs})


def test_iou_exactly_fg_threshold_is_positive() -> None:
    anchors = torch.tensor([[0.0, 0.0, 7.0, 10.0]])  # IoU 70 / 100
    labels, matched = creator(allow_low_quality_matches=False).assign_single(anchors, GT, BIG_IMAGE)
    assert labels.tolist() == [1.0]
    assert torch.equal(matched, GT)


def test_iou_exactly_bg_threshold_is_ignored_and_below_is_negative() -> None:
    anchors = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1: positive
            [0.0, 0.0, 3.0, 10.0],  # IoU 0.3 exactly: ignored
            [0.0, 0.0, 2.0, 10.0],  # IoU 0.2: negative
            [0.0, 0.0, 5.0, 10.0],  # IoU 0.5: ignored
            [20.0, 20.0, 30.0, 30.0],  # IoU 0: negative
        ]
    )
    labels, _ = creator().assign_single(anchors, GT, BIG_IMAGE)
    assert labels.tolist() == [1.0, -1.0, 0.0, -1.0, 0.0]
    assert labels.dtype == anchors.dtype


def test_low_quality_ties_are_all_positive() -> None:
    anchors = torch.tensor(
        [
            [0.0, 0.0, 5.0, 10.0],  # IoU 0.5, the GT's best
            [5.0, 0.0, 10.0, 10.0],  # IoU 0.5, tied
            [0.0, 0.0, 4.0, 10.0],  # IoU 0.4: ignored
            [0.0, 0.0, 1.0, 10.0],  # IoU 0.1: negative
        ]
    )
    labels, matched = creator().assign_single(anchors, GT, BIG_IMAGE)
    assert labels.tolist() == [1.0, 1.0, -1.0, 0.0]
    assert torch.equal(matched[:2], GT.expand(2, 4))
    strict_labels, _ = creator(allow_low_quality_matches=False).assign_single(
        anchors, GT, BIG_IMAGE
    )
    assert strict_labels.tolist() == [-1.0, -1.0, -1.0, 0.0]


def test_each_anchor_matches_its_best_gt() -> None:
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 120.0, 120.0]])
    anchors = torch.tensor([[101.0, 100.0, 120.0, 120.0], [0.0, 0.0, 10.0, 9.0]])
    labels, matched = creator().assign_single(anchors, gt, BIG_IMAGE)
    assert labels.tolist() == [1.0, 1.0]
    assert torch.equal(matched, gt[[1, 0]])


@pytest.mark.parametrize("empty", [torch.zeros(0, 4), torch.zeros(0)])
def test_empty_gt_gives_all_negatives(empty: torch.Tensor) -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 20.0]])
    labels, matched = creator().assign_single(anchors, empty, BIG_IMAGE)
    assert labels.tolist() == [0.0, 0.0]
    assert torch.equal(matched, torch.zeros(2, 4))


def test_border_policy_ignores_crossing_anchors() -> None:
    gt = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    anchors = torch.tensor(
        [
            [-2.0, 0.0, 38.0, 40.0],  # IoU 0.905 but crosses the left border by 2
            [2.0, 0.0, 42.0, 40.0],  # IoU 0.905, inside
            [0.0, 0.0, 30.0, 40.0],  # IoU 0.75, inside
            [50.0, 50.0, 60.0, 60.0],  # negative
            [90.0, 50.0, 101.0, 60.0],  # negative, crosses the right border (width 100)
        ]
    )
    image = (80, 100)
    labels, _ = creator().assign_single(anchors, gt, image)
    assert labels.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    labels, _ = creator(allowed_border=0).assign_single(anchors, gt, image)
    assert labels.tolist() == [-1.0, 1.0, 1.0, 0.0, -1.0]
    labels, _ = creator(allowed_border=2).assign_single(anchors, gt, image)
    assert labels.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    # The image's own size counts, not the padded batch: a narrower image flags more.
    labels, _ = creator(allowed_border=0).assign_single(anchors, gt, (80, 41))
    assert labels.tolist() == [-1.0, -1.0, 1.0, -1.0, -1.0]


def test_border_policy_with_empty_gt() -> None:
    anchors = torch.tensor([[-5.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    labels, _ = creator(allowed_border=0).assign_single(anchors, torch.zeros(0, 4), (50, 50))
    assert labels.tolist() == [-1.0, 0.0]


def test_best_anchor_of_a_gt_is_chosen_among_inside_anchors() -> None:
    # The GT's best anchor crosses the border; with the paper's policy the best inside
    # anchor becomes its low-quality positive instead, as in py-faster-rcnn.
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    anchors = torch.tensor(
        [
            [-4.0, 0.0, 6.0, 10.0],  # IoU 60 / 140 = 0.43, crosses the left border
            [0.0, 0.0, 4.2, 10.0],  # IoU 0.42, the best inside anchor
            [0.0, 0.0, 4.0, 10.0],  # IoU 0.4
        ]
    )
    labels, _ = creator().assign_single(anchors, gt, (100, 100))
    assert labels.tolist() == [1.0, -1.0, -1.0]
    labels, _ = creator(allowed_border=0).assign_single(anchors, gt, (100, 100))
    assert labels.tolist() == [-1.0, 1.0, -1.0]


def test_call_handles_a_batch() -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    labels, matched = AnchorTargetCreator.from_config(FasterRCNNConfig())(
        [anchors, anchors], [GT, torch.zeros(0, 4)], [BIG_IMAGE, BIG_IMAGE]
    )
    assert [t.tolist() for t in labels] == [[1.0, 0.0], [0.0, 0.0]]
    assert [t.shape for t in matched] == [(2, 4), (2, 4)]


def labels_with(num_pos: int, num_neg: int, num_ignored: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.ones(num_pos), torch.zeros(num_neg), -torch.ones(num_ignored)])
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(1))]


@pytest.mark.parametrize(
    ("num_pos", "num_neg", "expected"),
    [(10, 1000, (10, 246)), (500, 1000, (128, 128)), (500, 20, (128, 20))],
)
def test_sampler_counts(num_pos: int, num_neg: int, expected: tuple[int, int]) -> None:
    labels = labels_with(num_pos, num_neg, num_ignored=30)
    logits = torch.randn(labels.numel())
    random_sampler = BalancedPositiveNegativeSampler(256, 0.5)
    hard_sampler = HardNegativeSampler(256, 0.5)
    for pos, neg in (
        random_sampler([labels], None, torch.Generator().manual_seed(0)),
        hard_sampler([labels], [logits], torch.Generator().manual_seed(0)),
    ):
        assert (int(pos[0].sum()), int(neg[0].sum())) == expected
        assert bool((labels[pos[0].bool()] == 1).all())
        assert bool((labels[neg[0].bool()] == 0).all())


def test_hard_negatives_are_the_highest_loss_ones_ties_to_lower_index() -> None:
    labels = torch.tensor([0.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0])
    logits = torch.tensor([0.5, -9.0, 2.0, 0.5, 9.0, -1.0, 0.5, 3.0])
    # 1 positive, so 3 negatives: logits 3.0 (index 7), 2.0 (index 2), then the first of
    # the 0.5 ties (index 0). The ignored anchor with logit 9 is never a negative.
    pos, neg = HardNegativeSampler(4, 0.5)([labels], [logits])
    assert pos[0].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert neg[0].tolist() == [1, 0, 1, 0, 0, 0, 0, 1]
    assert pos[0].dtype == torch.uint8


def test_hard_negative_positives_follow_the_balanced_sampler_draws() -> None:
    labels = labels_with(300, 400)
    logits = torch.randn(labels.numel())
    pos_random, _ = BalancedPositiveNegativeSampler(256, 0.5)(
        [labels], generator=torch.Generator().manual_seed(5)
    )
    pos_hard, _ = HardNegativeSampler(256, 0.5)(
        [labels], [logits], torch.Generator().manual_seed(5)
    )
    assert torch.equal(pos_random[0], pos_hard[0])
    torch.manual_seed(3)
    pos_global, _ = HardNegativeSampler(256, 0.5)([labels], [logits])
    torch.manual_seed(3)
    pos_global_again, _ = HardNegativeSampler(256, 0.5)([labels], [logits])
    assert torch.equal(pos_global[0], pos_global_again[0])


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_box_no_anchor_overlaps_adds_no_positive_beyond_its_best_anchors(preset) -> None:
    # A 7-pixel box in the corner: with the paper's border policy no inside anchor
    # overlaps it, and its best IoU of 0 once tied with every anchor (5834 positives and
    # no negative on a 600x800 image, against 16 and 5289 for the other box alone).
    model = FasterRCNN.from_config(preset_config(preset, 2))
    image = (600, 800)
    placed = PaddedBatchAnchors.of_model(model)
    anchors = placed(padded_size([image], model.transform.size_divisible))
    targets = AnchorTargetCreator.from_config(model.config)
    normal = torch.tensor([[200.0, 200.0, 400.0, 400.0]])
    corner = torch.tensor([[0.0, 0.0, 7.0, 7.0]])
    alone, _ = targets.assign_single(anchors, normal, image)
    both, _ = targets.assign_single(anchors, torch.cat([corner, normal]), image)
    if preset == "paper_vgg16":
        assert (int((alone == 1).sum()), int((alone == 0).sum())) == (16, 5289)
        assert torch.equal(both, alone)
    else:
        # Border anchors are kept: the corner box gets its best anchors (ties) and no more.
        inside_best = box_iou(corner, anchors)[0]
        ties = int((inside_best == inside_best.max()).sum())
        assert inside_best.max() > 0
        assert int((both == 1).sum()) <= int((alone == 1).sum()) + ties


def test_a_floor_keeps_weak_best_matches_out() -> None:
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    anchors = torch.tensor([[0.0, 0.0, 10.0, 40.0], [0.0, 0.0, 10.0, 50.0]])  # IoU 0.25, 0.2
    labels, _ = creator().assign_single(anchors, gt, BIG_IMAGE)
    assert labels.tolist() == [1.0, 0.0]
    labels, _ = creator(low_quality_min_iou=0.3).assign_single(anchors, gt, BIG_IMAGE)
    assert labels.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("allowed_border", [-1, 0])
@pytest.mark.parametrize("block_pairs", [1, 5 * 7, 5 * 8, 5 * 300])
def test_every_iou_is_matched_a_block_of_anchors_at_a_time_as_on_the_whole_matrix(
    monkeypatch, allowed_border, block_pairs
) -> None:
    # 5 boxes (two duplicates, one on the border) against 300 anchors, in blocks of 1, 7
    # (a short last one), 8 and 300 anchors: the labels and matches of the whole matrix.
    generator = torch.Generator().manual_seed(5)
    corners = (torch.rand(300, 2, generator=generator) * 90 - 5).round()
    anchors = torch.cat((corners, corners + torch.tensor([[16.0, 8.0]])), dim=1)
    gt = torch.tensor(
        [
            [10.0, 10.0, 26.0, 20.0],
            [10.0, 10.0, 26.0, 20.0],
            [0.0, 40.0, 12.0, 52.0],
            [50.0, 50.0, 66.0, 58.0],
            [30.0, 5.0, 60.0, 25.0],
        ]
    )
    iou = box_iou(gt, anchors)
    crossing = anchors_crossing_border(anchors, (100, 100), 0)
    if allowed_border >= 0:
        iou = iou.masked_fill(crossing[None], -1.0)
    matcher = creator(allowed_border=allowed_border).matcher
    expected_matches, expected_labels = matcher(iou)
    expected_labels = expected_labels.float().masked_fill(crossing & (allowed_border >= 0), -1)
    blocks = functools.partial(anchor_targets.box_iou_blocks, block_pairs=block_pairs)
    monkeypatch.setattr(anchor_targets, "box_iou_blocks", blocks)
    labels, matched = creator(allowed_border=allowed_border).assign_single(anchors, gt, (100, 100))
    assert torch.equal(labels, expected_labels)
    assert torch.equal(matched, gt[expected_matches])
    assert (labels == 1).sum() > (iou >= 0.7).any(dim=0).sum()  # rule (i) adds some


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_every_iou_of_a_crowded_image_is_matched_in_little_memory() -> None:
    # 1000 boxes against 60,000 anchors, every IoU (no anchor grid given): the whole
    # matrix and box_iou's intermediates raised the peak by 1.9 GB, blocks of anchors by
    # under 30 MB.
    setup = """
from faster_rcnn.rpn.anchor_targets import AnchorTargetCreator
generator = torch.Generator().manual_seed(0)
corners = torch.rand(61_000, 2, generator=generator) * 780
boxes = torch.cat((corners, corners + 16), dim=1)
creator = AnchorTargetCreator(0.7, 0.3)
creator.assign_single(boxes[1000:1100], boxes[:3], (800, 800))
"""
    measured = "creator.assign_single(boxes[1000:], boxes[:1000], (800, 800))"
    assert peak_rise_mb(setup, measured) < 150  # MB
