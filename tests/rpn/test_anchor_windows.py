"""The windowed anchor matching: the pairs it measures hold every pair that matters, and
the targets equal those of measuring every anchor against every box."""

import sys
from functools import cache

import pytest
import torch

from faster_rcnn import FasterRCNN
from faster_rcnn.anchors import AnchorGenerator
from faster_rcnn.insight.anchor_coverage import AnchorGrid, PaddedBatchAnchors
from faster_rcnn.matcher import IGNORED, NEGATIVE, POSITIVE, Matcher
from faster_rcnn.models import preset_config
from faster_rcnn.ops.boxes import box_iou
from faster_rcnn.rpn.anchor_targets import AnchorTargetCreator
from faster_rcnn.rpn.anchor_windows import AnchorShapes, anchors_reaching
from peak_memory import peak_rise_mb

# Padded sizes that are not multiples of the strides' product, so strides differ by axis.
PADDED = {"resnet50_fpn": (608, 1024), "mobilenet_v2_fpn": (640, 832), "paper_vgg16": (592, 1008)}
PRESETS = tuple(PADDED)


@cache
def anchor_grid(preset: str) -> AnchorGrid:
    model = FasterRCNN.from_config(preset_config(preset, 3))
    return PaddedBatchAnchors.of_model(model).grid(PADDED[preset])


def hard_boxes(seed: int, count: int, size: tuple[int, int]) -> torch.Tensor:
    """Boxes of 2 to 700 px, aspect ratios 1:8 to 8:1, some cut by the border, half of
    them on whole pixels (the ties of rounded anchors), plus three duplicates."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    centres = torch.rand(count, 2, generator=generator) * torch.tensor([width, height])
    scale = 2.0 * 350.0 ** torch.rand(count, 1, generator=generator)
    aspect = 8.0 ** (2 * torch.rand(count, 1, generator=generator) - 1)
    wh = scale * torch.cat((aspect.sqrt(), 1 / aspect.sqrt()), dim=1)
    boxes = torch.cat((centres - wh / 2, centres + wh / 2), dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    boxes[: count // 2] = boxes[: count // 2].round()
    boxes = boxes[(boxes[:, 2:] - boxes[:, :2] > 1).all(dim=1)]
    return torch.cat((boxes, boxes[:3]))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("min_iou", [0.0, 0.3, 0.5, 0.7])
def test_pairs_hold_every_anchor_reaching_the_iou(preset: str, min_iou: float) -> None:
    grid = anchor_grid(preset)
    boxes = hard_boxes(1, 60, PADDED[preset])
    gt, anchor = anchors_reaching(boxes, AnchorShapes.of_levels(grid.levels, "cpu"), min_iou)

    listed = torch.zeros(len(boxes), len(grid.anchors), dtype=torch.bool)
    listed[gt, anchor] = True
    assert int(listed.sum()) == len(gt), "a pair is listed twice"
    iou = box_iou(boxes, grid.anchors)
    needed = iou >= min_iou if min_iou > 0 else iou > 0
    assert not (needed & ~listed).any()
    if min_iou >= 0.3:
        # The point of it: a small fraction of the pairs is measured.
        assert len(gt) < 0.1 * iou.numel()


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(
    ("allowed_border", "low_quality_min_iou"), [(-1, 0.0), (0, 0.0), (-1, 0.3), (16, 0.1)]
)
def test_windowed_targets_equal_every_anchor_measured(
    preset: str, allowed_border: float, low_quality_min_iou: float
) -> None:
    grid = anchor_grid(preset)
    padded_height, padded_width = PADDED[preset]
    image_size = (padded_height - 21, padded_width - 45)
    creator = AnchorTargetCreator(0.7, 0.3, True, allowed_border, low_quality_min_iou)
    for seed, count in [(2, 1), (3, 8), (4, 40), (5, 150)]:
        boxes = hard_boxes(seed, count, image_size)
        dense_labels, dense_matched = creator.assign_single(grid.anchors, boxes, image_size)
        labels, matched = creator.assign_single(grid.anchors, boxes, image_size, grid.levels)
        assert torch.equal(labels, dense_labels)
        positive = labels == POSITIVE
        assert torch.equal(matched[positive], dense_matched[positive])
        # Every band occurs, and some positives come from the best-anchor rule only.
        assert {NEGATIVE, IGNORED, POSITIVE} <= set(labels.tolist())


@pytest.mark.parametrize("preset", PRESETS)
def test_windowed_targets_of_many_boxes_below_the_threshold_equal_every_anchor_measured(
    preset: str,
) -> None:
    # 300 boxes of 3-20 px: most reach no anchor at 0.3, more than one block of them.
    grid = anchor_grid(preset)
    generator = torch.Generator().manual_seed(7)
    height, width = PADDED[preset]
    corners = torch.rand(300, 2, generator=generator) * torch.tensor([width - 20, height - 20])
    sides = 3 + 17 * torch.rand(300, 2, generator=generator)
    boxes = torch.cat((corners, corners + sides), dim=1)
    boxes[::2] = boxes[::2].round()
    boxes = torch.cat((boxes, boxes[:5]))  # duplicates: ties between boxes
    creator = AnchorTargetCreator(0.7, 0.3, True, -1, 0.0)
    dense_labels, dense_matched = creator.assign_single(grid.anchors, boxes, (height, width))
    labels, matched = creator.assign_single(grid.anchors, boxes, (height, width), grid.levels)
    assert torch.equal(labels, dense_labels)
    positive = labels == POSITIVE
    assert torch.equal(matched[positive], dense_matched[positive])
    best_iou = box_iou(boxes, grid.anchors).amax(dim=1)
    assert (best_iou < 0.3).sum() > 64


# 1000 boxes of 16 px on resnet50_fpn's anchors at 800 x 1088, in a fresh process: each
# reaches 0.25 at best (a 32-px anchor), so every anchor that overlaps it is measured.
_SMALL_BOXES_SETUP = """
from faster_rcnn import FasterRCNN
from faster_rcnn.insight.anchor_coverage import PaddedBatchAnchors
from faster_rcnn.models import preset_config
from faster_rcnn.rpn.anchor_targets import AnchorTargetCreator
model = FasterRCNN.from_config(preset_config("resnet50_fpn", 3))
grid = PaddedBatchAnchors.of_model(model).grid((800, 1088))
creator = AnchorTargetCreator.from_config(model.config)
corners = torch.rand(1000, 2, generator=torch.Generator().manual_seed(0)) * 780
boxes = torch.cat((corners, corners + 16), dim=1)
creator.assign_single(grid.anchors, boxes[:3], (800, 1088), grid.levels)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_many_boxes_below_the_threshold_are_matched_in_little_memory() -> None:
    # Their 4.6 million pairs at once raised the peak by 816 MB; 64 boxes at a time, with
    # only each box's best pairs kept, by under 30 MB.
    rise = peak_rise_mb(
        _SMALL_BOXES_SETUP, "creator.assign_single(grid.anchors, boxes, (800, 1088), grid.levels)"
    )
    assert rise < 150  # MB


def test_windowed_targets_of_an_image_without_boxes() -> None:
    grid = anchor_grid("resnet50_fpn")
    creator = AnchorTargetCreator(0.7, 0.3)
    labels, _ = creator.assign_single(grid.anchors, torch.zeros((0, 4)), (600, 1000), grid.levels)
    assert labels.eq(NEGATIVE).all()


def test_a_best_anchor_below_the_threshold_keeps_its_own_best_box() -> None:
    """A tiny box's best anchor (IoU 0.25) overlaps a wide box by more (0.286), but less
    than the negative threshold, so no window of the wide box lists it: it must still be
    matched to the wide box, as measuring every anchor matches it."""
    # Two levels of 10 x 10 cells of 16 px, centres at 8 + 16 k: 32 x 32 anchors, and
    # 112 x 32 ones for the wide box.
    generator = AnchorGenerator(
        sizes=((32.0,), ((112.0 * 32.0) ** 0.5,)), aspect_ratios=((1.0,), (32 / 112,)), offset=0.5
    )
    maps = [torch.zeros(1, 1, 10, 10)] * 2
    anchors = generator.image_anchors((160, 160), maps)
    levels = generator.level_grids((160, 160), [(10, 10)] * 2)
    tiny = torch.tensor([10.0, 10.0, 26.0, 26.0])
    wide = torch.tensor([8.0, 8.0, 120.0, 40.0])
    boxes = torch.stack((tiny, wide))
    iou = box_iou(boxes, anchors)
    best_of_tiny = int(iou[0].argmax())
    assert anchors[best_of_tiny].tolist() == [8.0, 8.0, 40.0, 40.0]
    assert iou[0, best_of_tiny] == 0.25 and 0.28 < iou[1, best_of_tiny] < 0.3
    gt, pair_anchor = anchors_reaching(boxes, AnchorShapes.of_levels(levels, "cpu"), 0.3)
    assert not ((gt == 1) & (pair_anchor == best_of_tiny)).any()

    creator = AnchorTargetCreator(0.7, 0.3, True, -1, 0.0)
    labels, matched = creator.assign_single(anchors, boxes, (160, 160), levels)
    dense_labels, dense_matched = creator.assign_single(anchors, boxes, (160, 160))
    assert torch.equal(labels, dense_labels)
    assert labels[best_of_tiny] == POSITIVE
    assert torch.equal(matched[best_of_tiny], wide)
    assert torch.equal(dense_matched[best_of_tiny], wide)


@pytest.mark.parametrize("seed", range(5))
def test_match_pairs_is_the_matcher_on_the_sparse_matrix(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    num_gt, num_pred = 6, 300
    # IoUs on a coarse grid of values, so that ties (within a GT and across GTs) abound.
    dense = (torch.randint(0, 11, (num_gt, num_pred), generator=generator) / 10).float()
    dense[torch.rand(num_gt, num_pred, generator=generator) < 0.7] = 0.0
    dense[1] = 0.0  # a GT box no prediction overlaps
    listed = (dense > 0) | (torch.rand(num_gt, num_pred, generator=generator) < 0.1)
    gt, pred = listed.nonzero().unbind(1)
    for matcher in (
        Matcher((0.3, 0.7), (NEGATIVE, IGNORED, POSITIVE), allow_low_quality_matches=True),
        Matcher((0.3, 0.7), (NEGATIVE, IGNORED, POSITIVE), True, low_quality_min_iou=0.5),
        Matcher((0.1, 0.5), (IGNORED, NEGATIVE, POSITIVE)),
    ):
        matches, labels, best = matcher.match_pairs(gt, pred, dense[gt, pred], num_gt, num_pred)
        dense_matches, dense_labels = matcher(dense)
        assert torch.equal(labels, dense_labels)
        assert torch.equal(matches, dense_matches)
        assert torch.equal(best, dense.max(dim=0).values)


def test_the_rpn_loss_is_the_same_with_and_without_windows() -> None:
    torch.manual_seed(0)
    model = FasterRCNN.from_config(preset_config("small", 4)).train()
    images = [torch.rand(3, 200, 260), torch.rand(3, 180, 240)]
    targets = [
        {"boxes": hard_boxes(6, 12, (200, 260)), "labels": torch.ones(15, dtype=torch.int64)},
        {"boxes": hard_boxes(7, 5, (180, 240)), "labels": torch.ones(8, dtype=torch.int64)},
    ]
    batch = model.prepare_batch(images, targets)
    features = model.features(batch.images)
    prediction = model.rpn.predict(batch.images, features)
    resized = batch.training_targets()

    def loss(levels: bool) -> dict[str, torch.Tensor]:
        scored = prediction if levels else prediction._replace(levels=None)
        generator = torch.Generator().manual_seed(3)
        return model.rpn.compute_loss(scored, resized, batch.images, generator)

    windowed, dense = loss(levels=True), loss(levels=False)
    assert windowed.keys() == dense.keys()
    for name in windowed:
        assert torch.equal(windowed[name], dense[name]), name
