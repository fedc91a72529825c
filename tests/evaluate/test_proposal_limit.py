"""Evaluating more proposals than the model keeps: the RPN run once with a larger post-NMS
limit, the detection head fed the model's own first proposals, its detections unchanged."""

from __future__ import annotations

import pytest
import torch

from faster_rcnn.data.synthetic import SyntheticShapes
from faster_rcnn.evaluate.runner import evaluate_detector
from faster_rcnn.models import small


@pytest.fixture(scope="module")
def model_and_images() -> tuple:
    torch.manual_seed(0)
    model = small(num_classes=4).eval()
    dataset = SyntheticShapes(2, image_size=(96, 128), seed=1)
    return model, [dataset[i][0] for i in range(2)]


def test_a_raised_proposal_limit_leaves_the_detections_bit_identical(model_and_images) -> None:
    model, images = model_and_images
    assert model.config.rpn.post_nms_top_n_test == 300
    detections, own = model.detect_with_proposals(images)
    raised_detections, raised = model.detect_with_proposals(images, proposal_limit=1000)
    forward = model(images)
    assert sum(len(d["boxes"]) for d in detections) > 0
    for before, after, plain in zip(detections, raised_detections, forward, strict=True):
        for key in ("boxes", "labels", "scores"):
            assert torch.equal(before[key], after[key]) and torch.equal(before[key], plain[key])
    for before, after in zip(own, raised, strict=True):
        assert len(before["boxes"]) == 300 < len(after["boxes"]) <= 1000
        # The first 300 of the longer run are exactly the model's own proposals.
        assert torch.equal(after["boxes"][:300], before["boxes"])
        assert torch.equal(after["scores"][:300], before["scores"])
    assert model.config.rpn.post_nms_top_n_test == 300 and model.rpn.post_nms_top_n() == 300


def test_a_lower_proposal_limit_never_lowers_the_models_own(model_and_images) -> None:
    model, images = model_and_images
    detections, own = model.detect_with_proposals(images)
    lowered_detections, lowered = model.detect_with_proposals(images, proposal_limit=50)
    assert [len(p["boxes"]) for p in lowered] == [len(p["boxes"]) for p in own]
    for before, after in zip(detections, lowered_detections, strict=True):
        assert torch.equal(before["scores"], after["scores"])


def test_evaluation_measures_the_thousand_and_says_what_the_detections_use() -> None:
    torch.manual_seed(0)
    model = small(num_classes=4)
    result = evaluate_detector(model, SyntheticShapes(2, image_size=(96, 128), seed=1))
    figures = result.proposals
    assert 300 < figures["proposals_per_image/max"] <= 1000
    assert figures["recall@1000@0.5"] >= figures["recall@300@0.5"]
    assert result.detection_proposals == 300
    table = result.table()
    assert "evaluated up to 1000 per image (the model's detections use its 300):" in table
    assert f"max {int(figures['proposals_per_image/max'])}" in table
    assert "recall@1000@0.7" in table and "not measured" not in table


def test_evaluation_measures_the_models_own_limit_where_it_keeps_more_than_the_thousand():
    """A crowded set's recipe raises the model's limit (8,200 on 543 objects an image):
    the recall was measured at most at 1000, "mean 1000 proposals made", and recall by size
    given for 1000 while the detections used all of them."""
    torch.manual_seed(0)
    model = small(num_classes=4)
    model.rpn._post_nms_top_n["testing"] = 1500
    model.rpn._pre_nms_top_n["testing"] = 1500
    result = evaluate_detector(model, SyntheticShapes(2, image_size=(96, 128), seed=1))
    figures = result.proposals
    assert 1000 < figures["proposals_per_image/max"] <= 1500
    assert figures["recall@1500@0.5"] >= figures["recall@1000@0.5"]
    table = result.table()
    assert "evaluated up to 1500 per image (the model's detections use its 1500):" in table
    assert "recall by size at IoU 0.5, 1500 proposals:" in table
