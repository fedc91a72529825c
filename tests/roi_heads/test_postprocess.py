"""Detections from the head's outputs: threshold, clip, per-class NMS, cap."""

from __future__ import annotations

import math

import torch

from faster_rcnn.ops.boxes import BoxCoder
from faster_rcnn.roi_heads.postprocess import postprocess_detections

CODER = BoxCoder((10.0, 10.0, 5.0, 5.0))

PROPOSALS = torch.tensor(
    [
        [10.0, 10.0, 50.0, 50.0],  # p0
        [12.0, 12.0, 52.0, 52.0],  # p1: IoU 0.82 with p0 (and with p0 shifted by 4 px)
        [60.0, 60.0, 120.0, 90.0],  # p2: crosses the right border of the 100 x 100 image
        [-20.0, 0.0, -10.0, 10.0],  # p3: entirely left of the image, clipped to width 0
    ]
)
# Class probabilities (background, class 1, class 2) per proposal.
PROBS = torch.tensor(
    [
        [0.1, 0.6, 0.3],
        [0.1, 0.5, 0.4],
        [0.5, 0.02, 0.48],
        [0.05, 0.9, 0.05],
    ]
)


def run(
    score_thresh: float = 0.05,
    detections_per_img: int = 100,
    class_nms_thresh=(),
    soft=0.0,
    soft_min_score: float = 0.001,
):
    logits = PROBS.log()
    deltas = torch.zeros(4, 12)
    deltas[0, 4] = 1.0  # p0's class-1 box moves right by 1/10 of its width: x + 4
    boxes, scores, labels = postprocess_detections(
        logits,
        deltas,
        [PROPOSALS],
        [(100, 100)],
        CODER,
        score_thresh=score_thresh,
        nms_thresh=0.5,
        detections_per_img=detections_per_img,
        min_box_size=1e-2,
        class_nms_thresh=class_nms_thresh,
        soft_nms_sigma=soft,
        soft_nms_min_score=soft_min_score,
    )
    return boxes[0], scores[0], labels[0]


def test_per_class_nms_clipping_and_thresholds() -> None:
    boxes, scores, labels = run()
    # Class 1: p0 (0.6) suppresses p1 (0.5); p2 (0.02) is below the threshold; p3 (0.9)
    # is clipped to zero width and removed. Class 2: p1 (0.4) suppresses p0 (0.3) and
    # p2 (0.48) survives, clipped. p0/class 1 and p1/class 2 overlap but both stay.
    assert labels.tolist() == [1, 2, 2]
    torch.testing.assert_close(scores, torch.tensor([0.6, 0.48, 0.4]))
    torch.testing.assert_close(
        boxes,
        torch.tensor(
            [[14.0, 10.0, 54.0, 50.0], [60.0, 60.0, 100.0, 90.0], [12.0, 12.0, 52.0, 52.0]]
        ),
    )
    assert labels.dtype == torch.int64


def test_each_class_can_have_its_own_nms_threshold() -> None:
    # Class 1 at 0.9 keeps p1 (0.5) beside p0 shifted (0.6): their IoU is 38^2 / (2 * 40^2
    # - 38^2) = 0.82. Class 2 at 0.5 still drops p0 (0.3) under p1 (0.4), as at 0.5 for all.
    boxes, scores, labels = run(class_nms_thresh=(0.9, 0.5))
    assert labels.tolist() == [1, 1, 2, 2]
    torch.testing.assert_close(scores, torch.tensor([0.6, 0.5, 0.48, 0.4]))
    torch.testing.assert_close(boxes[1], torch.tensor([12.0, 12.0, 52.0, 52.0]))
    # Class 2 at 0.9 keeps p0 too; class 1 at 0.5 drops p1, as before.
    _, scores, labels = run(class_nms_thresh=(0.5, 0.9))
    assert labels.tolist() == [1, 2, 2, 2]
    torch.testing.assert_close(scores, torch.tensor([0.6, 0.48, 0.4, 0.3]))


def test_score_threshold_is_strict() -> None:
    # At exactly p1's class-2 score it is dropped, so p0's class-2 box is no longer
    # suppressed and comes back.
    threshold = torch.softmax(PROBS.log(), -1)[1, 2].item()
    _, scores, labels = run(score_thresh=threshold)
    assert labels.tolist() == [1, 2]
    torch.testing.assert_close(scores, torch.tensor([0.6, 0.48]))
    threshold = torch.softmax(PROBS.log(), -1)[0, 2].item()
    _, scores, labels = run(score_thresh=threshold - 1e-6)
    assert labels.tolist() == [1, 2, 2]


def test_detections_per_image_keeps_the_best() -> None:
    _, scores, labels = run(detections_per_img=2)
    assert labels.tolist() == [1, 2]
    torch.testing.assert_close(scores, torch.tensor([0.6, 0.48]))


def test_soft_nms_lowers_the_overlapping_detections_instead_of_removing_them() -> None:
    # The pairs greedy NMS splits (p0 and p1 in each class) overlap at IoU 1444 / 1756:
    # the lower of each keeps exp(-IoU^2 / 0.5) of its score, and both are found.
    factor = math.exp(-((1444 / 1756) ** 2) / 0.5)
    boxes, scores, labels = run(soft=0.5, class_nms_thresh=(0.1, 0.1))
    assert labels.tolist() == [1, 2, 2, 1, 2]
    expected = torch.tensor([0.6, 0.48, 0.4, 0.5 * factor, 0.3 * factor])
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(boxes[3:], torch.tensor([[12.0, 12, 52, 52], [10, 10, 50, 50]]))
    # The score threshold picks the candidates; lowered, a detection stays down to the
    # Soft-NMS floor: p0's class-2 box (0.3, lowered to 0.077) is kept under a threshold
    # of 0.1, and dropped once the floor is 0.1 too.
    _, scores, labels = run(score_thresh=0.1, soft=0.5)
    assert labels.tolist() == [1, 2, 2, 1, 2]
    torch.testing.assert_close(scores[-1], torch.tensor(0.3 * factor))
    _, _, labels = run(score_thresh=0.1, soft=0.5, soft_min_score=0.1)
    assert labels.tolist() == [1, 2, 2, 1]
    # A candidate under the score threshold is not one, whatever the floor.
    _, _, labels = run(score_thresh=0.35, soft=0.5)
    assert labels.tolist() == [1, 2, 2, 1]


def test_images_are_processed_separately() -> None:
    gen = torch.Generator().manual_seed(0)
    second = torch.tensor([[0.0, 0.0, 30.0, 30.0], [1.0, 1.0, 31.0, 31.0]])
    logits = torch.cat([PROBS.log(), torch.tensor([[0.0, 5.0, 0.0], [0.0, 4.0, 0.0]])])
    deltas = torch.randn(6, 12, generator=gen) * 0.01
    boxes, _, labels = postprocess_detections(
        logits,
        deltas,
        [PROPOSALS, second],
        [(100, 100), (20, 25)],
        CODER,
        score_thresh=0.05,
        nms_thresh=0.5,
        detections_per_img=100,
        min_box_size=1e-2,
    )
    assert len(boxes) == 2
    # The two overlapping class-1 boxes of image 1 become one, clipped to 25 x 20.
    assert labels[1].tolist() == [1]
    assert boxes[1][0, 2] == 25.0 and boxes[1][0, 3] == 20.0
    assert len(labels[0]) == 3


def test_no_proposals_gives_empty_detections() -> None:
    boxes, scores, labels = postprocess_detections(
        torch.zeros(0, 3),
        torch.zeros(0, 12),
        [torch.zeros(0, 4)],
        [(10, 10)],
        CODER,
        0.05,
        0.5,
        100,
        1e-2,
    )
    assert boxes[0].shape == (0, 4) and scores[0].shape == (0,) and labels[0].shape == (0,)
