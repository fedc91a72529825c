"""Detection in windows at the model's scale: where the windows lie, which cut copies are
dropped, each window's candidates moved to its place, and the merge.

A model that resizes by 1 (the image's shorter side is its ``min_size``) lets each window
be checked against the model run on the same crop of the input image; an image the
window holds whole against the model's own detections, bit for bit.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from torch import Tensor

from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.evaluate import evaluate_detector
from faster_rcnn.test_time_flips import TestTimeFlips
from faster_rcnn.windowed_detection import (
    WindowedDetection,
    cut_at_inner_edges,
    window_origins,
    window_proposal_limit,
)
from spread_models import images_of_sizes, small_detector


@pytest.mark.parametrize(
    ("length", "window", "overlap", "expected"),
    [
        # Steps of at most 600 px (800 * 0.75): 1200 px in 2 steps.
        (2000, 800, 0.25, [0, 600, 1200]),
        # 1300 px needs 3 steps of 433.3, floored.
        (2100, 800, 0.25, [0, 433, 866, 1300]),
        (800, 800, 0.25, [0]),
        (500, 800, 0.25, [0]),  # a window holds the side whole
        (801, 800, 0.25, [0, 1]),
        (1600, 800, 0.0, [0, 800]),  # no overlap: side by side
        (1601, 800, 0.0, [0, 400, 801]),
        (1000, 800, 0.5, [0, 200]),
        (100, 40, 0.99, [*range(61)]),  # steps of at least 1 px
    ],
)
def test_the_fewest_windows_that_overlap_enough_spread_evenly(length, window, overlap, expected):
    assert window_origins(length, window, overlap) == expected


@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.25, 0.5, 0.8])
@pytest.mark.parametrize("window", [32, 100, 333])
def test_windows_cover_the_side_with_neighbours_overlapping_enough_and_no_fewer_do(window, overlap):
    for length in range(window, 4 * window + 7, 7):
        origins = window_origins(length, window, overlap)
        assert origins[0] == 0 and origins[-1] == length - window
        steps = [b - a for a, b in pairwise(origins)]
        assert all(step > 0 and window - step >= overlap * window for step in steps)
        if len(origins) > 2:  # one window fewer would step further than the overlap allows
            assert (length - window) / (len(origins) - 2) > math.floor(window * (1 - overlap))


def test_a_box_at_an_inner_edge_no_longer_than_the_overlap_is_a_cut_copy():
    # A 100 x 200 window whose right edge overlaps the next window by 50 px and whose
    # bottom edge the one below by 30; its left and top edges are the image's.
    boxes = torch.tensor(
        [
            [150.0, 10.0, 199.5, 40.0],  # at the right edge, 49.5 wide: dropped
            [140.0, 10.0, 200.0, 40.0],  # 60 wide: the neighbour does not hold it whole
            [150.0, 10.0, 198.0, 40.0],  # 2 px from the edge
            [0.0, 10.0, 30.0, 40.0],  # at the left edge, the image's
            [10.0, 0.0, 40.0, 20.0],  # at the top edge, the image's
            [10.0, 80.0, 40.0, 100.0],  # at the bottom edge, 20 high: dropped
            [10.0, 60.0, 40.0, 99.2],  # 39.2 high
            [170.0, 75.0, 200.0, 100.0],  # in the corner, 30 x 25: dropped
        ]
    )
    cut = cut_at_inner_edges(boxes, (100, 200), (None, None, 50, 30))
    assert cut.tolist() == [True, False, False, False, False, True, False, True]
    # The same boxes in a window whose left and top edges are inner, overlapping by 30.
    moved = cut_at_inner_edges(boxes, (100, 200), (30, 30, None, None))
    assert moved.tolist() == [False, False, False, True, True, False, False, False]


def _resizing_by_one():
    """The small preset with a shorter side of 320 and a longer of at most 640: a 320 x
    480 image is not resized."""
    model = small_detector()
    model.transform.max_size = 640
    assert model.transform.min_size == (320,)
    return model


def test_each_window_s_candidates_are_the_model_s_on_that_crop_moved_to_its_place():
    model = _resizing_by_one()
    (image,) = images_of_sizes([(320, 480)])
    # 320 x 320 windows: at x 0 and x 160, overlapping by 160 px.
    detector = WindowedDetection(model, (320, 320), overlap=0.25)
    (found,), (proposals,) = detector.candidates_with_proposals([image])
    (left,), (left_proposals,) = model.candidates_with_proposals([image[:, :, :320]])
    (right,), (right_proposals,) = model.candidates_with_proposals([image[:, :, 160:]])
    lx1, _, lx2, _ = left["boxes"].unbind(1)
    rx1, _, rx2, _ = right["boxes"].unbind(1)
    # Cut copies: at the left window's right edge, or the right window's left edge, and
    # at most 160 px wide.
    left_cut = (lx2 >= 319) & (lx2 - lx1 <= 160)
    right_cut = (rx1 <= 1) & (rx2 - rx1 <= 160)
    assert right_cut.sum() == 2 and not left_cut.any()  # a random model's boxes are small
    shift = torch.tensor([160.0, 0.0, 160.0, 0.0])
    for key in ("boxes", "labels", "scores"):
        moved = right[key][~right_cut] + (shift if key == "boxes" else 0)
        assert torch.equal(found[key], torch.cat([left[key][~left_cut], moved]))
    # Every window's proposals, by decreasing score.
    scores = torch.cat([left_proposals["scores"], right_proposals["scores"]])
    assert torch.equal(proposals["scores"], scores.sort(descending=True).values)
    assert torch.equal(proposals["boxes"][0], _best(left_proposals, right_proposals, shift))


def test_hand_set_candidates_come_back_moved_and_the_cut_copies_dropped(monkeypatch):
    model = _resizing_by_one()
    (image,) = images_of_sizes([(320, 480)])
    # Every window (320 x 320, at x 0 and 160) finds a box at its right edge, one at its
    # left edge (both 20 px wide) and one inside.
    boxes = torch.tensor([[300.0, 10, 320, 40], [0, 50, 20, 80], [100, 100, 140, 140]])
    found = {"boxes": boxes, "labels": torch.tensor([1, 2, 3]), "scores": torch.ones(3)}
    proposals = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0)}
    monkeypatch.setattr(model, "detect_prepared", lambda *_, **__: ([found], [proposals]))
    detector = WindowedDetection(model, (320, 320))
    (pooled,), _ = detector.candidates_with_proposals([image])
    # The first window's right edge and the second's left edge are inner: their boxes
    # there are dropped; the others are moved by the window's x.
    expected = [[0.0, 50, 20, 80], [100, 100, 140, 140], [460, 10, 480, 40], [260, 100, 300, 140]]
    assert torch.equal(pooled["boxes"], torch.tensor(expected))
    assert pooled["labels"].tolist() == [2, 3, 1, 3]


def _best(left: dict[str, Tensor], right: dict[str, Tensor], shift: Tensor) -> Tensor:
    """The best-scoring proposal of the two windows, in the image's pixels."""
    if left["scores"][0] >= right["scores"][0]:
        return left["boxes"][0]
    return right["boxes"][0] + shift


def test_windows_are_detected_one_at_a_time_turned_to_the_image_with_the_model_s_limits(
    monkeypatch,
):
    model = _resizing_by_one()
    (image,) = images_of_sizes([(480, 320)])  # portrait, not resized
    prepared = model.prepare_batch([image]).images.tensors[0]
    detected = []
    detect_prepared = model.detect_prepared

    def recorded(images, proposal_limit=None, before_nms=False):
        detected.append((images.tensors, images.image_sizes, proposal_limit))
        return detect_prepared(images, proposal_limit, before_nms)

    monkeypatch.setattr(model, "detect_prepared", recorded)
    # The 320 x 400 window turned to 400 x 320: at y 0 and 80.
    WindowedDetection(model, (320, 400)).detect_with_proposals([image], 1000)
    assert [(sizes, limit) for _, sizes, limit in detected] == [([(400, 320)], 1000)] * 2
    for (tensors, _, _), top in zip(detected, (0, 80), strict=True):
        assert tensors.shape == (1, 3, 416, 320)  # padded to a multiple of 32, as a batch is
        assert torch.equal(tensors[0, :, :400], prepared[:, top : top + 400])
        assert not tensors[0, :, 400:].any()


@pytest.mark.parametrize(
    ("limit", "window", "image", "expected"),
    [
        # An 800 x 1067 window of 3000 x 2000: 1166.6, up to hundreds.
        (8200, 800 * 1067, 3000 * 2000, 1200),
        (8200, 600 * 800, 600 * 800, 8200),  # a window holding the image whole
        (2000, 3, 10, 1000),  # 600, but never under a preset's 1000
        (1000, 1, 4, 1000),
        (300, 1, 4, 300),  # nor over the model's own
        # 16200 exactly: the share in floating point rounded it up to 16300.
        (20000, 1341 * 1341, 1490 * 1490, 16200),
    ],
)
def test_a_window_s_proposal_limit_is_the_model_s_for_its_share_of_the_pixels(
    limit, window, image, expected
):
    assert window_proposal_limit(limit, window, image) == expected


def test_each_window_is_detected_with_the_limits_scaled_and_the_model_keeps_its_own(monkeypatch):
    # Limits raised for a whole crowded image: 12 windows with all 8,200 each made 12 times
    # the whole image's RoIs, 4.8 times its time.
    model = _resizing_by_one()
    model.rpn._pre_nms_top_n["testing"] = 8200
    model.rpn._post_nms_top_n["testing"] = 6000
    (image,) = images_of_sizes([(320, 480)])
    seen = []
    detect_prepared = model.detect_prepared

    def recorded(images, proposal_limit=None, before_nms=False):
        seen.append((model.rpn.pre_nms_top_n(), model.rpn.post_nms_top_n()))
        return detect_prepared(images, proposal_limit, before_nms)

    monkeypatch.setattr(model, "detect_prepared", recorded)
    _, (proposals,) = WindowedDetection(model, (320, 320)).detect_with_proposals([image])
    # Two 320 x 320 windows of 320 x 480, each 2/3 of the pixels: 5466.7 and 4000.
    assert seen == [(5500, 4000)] * 2
    assert len(proposals["boxes"]) <= 2 * 4000
    assert (model.rpn.pre_nms_top_n(), model.rpn.post_nms_top_n()) == (8200, 6000)


def test_an_image_the_window_holds_whole_gets_the_model_s_own_detections_bit_for_bit():
    model = small_detector()
    detector = WindowedDetection(model, (512, 512))  # the small preset resizes to <= 512
    for image in images_of_sizes([(120, 160), (150, 100)]):
        expected = model.detect_with_proposals([image], 1000)
        got = detector.detect_with_proposals([image], 1000)
        assert len(expected[0][0]["scores"]) > 0
        for wanted, found in zip(expected, got, strict=True):
            assert wanted[0].keys() == found[0].keys()
            assert all(torch.equal(found[0][key], wanted[0][key]) for key in wanted[0])


def test_flips_outside_windows_inside():
    model = small_detector()
    images = images_of_sizes([(120, 160), (150, 100)])
    # A window holding the image whole: the plain flips (of one image: a batch pads its
    # images to one size, windows are detected one image at a time).
    (found,) = TestTimeFlips(WindowedDetection(model, (512, 512)), "both")(images[:1])
    (wanted,) = TestTimeFlips(model, "both")(images[:1])
    assert all(torch.equal(found[key], wanted[key]) for key in wanted)
    # Each image resized to 320 x 426 and 480 x 320: windows of 200 x 256 (turned for the
    # portrait), 2 x 2 and 3 x 2 of them.
    windowed = TestTimeFlips(WindowedDetection(model, (200, 256)), "horizontal")(images)
    for found, (height, width) in zip(windowed, ((120, 160), (150, 100)), strict=True):
        assert len(found["scores"]) > 0
        assert (found["boxes"] >= 0).all()
        assert (found["boxes"][:, 2] <= width).all() and (found["boxes"][:, 3] <= height).all()


def test_describe_says_the_windows_the_resize_and_the_merge():
    detector = WindowedDetection(small_detector(), (800, 1067), overlap=0.2)
    assert detector.describe() == (
        "windows of 800 x 1067 at the model's scale (overlap 20%): each image resized to "
        "320 px (longer side at most 512), each window detected alone, the boxes cut at "
        "an inner window edge dropped, the rest pooled and selected by the model's own NMS"
    )


@pytest.mark.parametrize(
    ("window", "overlap", "error"),
    [
        ((800,), 0.25, "two positive sides"),
        ((0, 800), 0.25, "two positive sides"),
        ((800, 800), 1.0, r"overlap must be in \[0, 1\), got 1.0"),
        ((800, 800), -0.1, r"overlap must be in \[0, 1\), got -0.1"),
    ],
)
def test_a_window_or_overlap_out_of_range_is_refused(window, overlap, error):
    with pytest.raises(ValueError, match=error):
        WindowedDetection(small_detector(), window, overlap)


def test_evaluation_says_no_proposals_an_image_for_windows_and_the_models_for_flips():
    """A windowed detector's detections use each window's proposals: evaluation names no
    count an image (flips around windows neither), where the plain model and its flips
    use its 300."""
    model = small_detector().eval()
    data = SyntheticShapes(1, image_size=(96, 128), seed=1)
    windows = WindowedDetection(model, (64, 64))
    for detector in (windows, TestTimeFlips(windows)):
        result = evaluate_detector(detector, data)
        assert result.detection_proposals is None
        assert "detections use its" not in result.table()
    for detector in (model, TestTimeFlips(model)):
        result = evaluate_detector(detector, data)
        assert result.detection_proposals == 300
        assert "(the model's detections use its 300)" in result.table()
