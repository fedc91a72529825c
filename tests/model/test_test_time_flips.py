"""Test-time flips: each view's candidates mirrored back, pooled, and selected once.

A stub detector with hand-set candidates per view checks the arithmetic (which boxes come
back where, what the head's NMS keeps); a real detector checks the properties: a model's
candidates reselected are its detections, and mirroring the input mirrors the merged
detections.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from faster_rcnn import models
from faster_rcnn.test_time_flips import TestTimeFlips
from spread_models import images_of_sizes, small_detector


class _StubDetector:
    """Candidates set by hand for the image as it is and for its left-right mirror; the
    view is told by a marker pixel in the unflipped image's top-left corner."""

    num_classes = 3

    def __init__(self, as_is: dict[str, Tensor], mirrored: dict[str, Tensor]) -> None:
        self.roi_heads = models.small(self.num_classes).roi_heads
        self.roi_heads.soft_nms_sigma = 0.0
        self.roi_heads.nms_thresh = 0.5
        self.as_is, self.mirrored = as_is, mirrored
        self.limits: list[int | None] = []

    def candidates_with_proposals(self, images, proposal_limit=None):
        self.limits.append(proposal_limit)
        found = [self.as_is if image[0, 0, 0] == 1 else self.mirrored for image in images]
        proposals = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0)} for _ in images]
        return found, proposals


def _candidates(boxes, labels, scores) -> dict[str, Tensor]:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(scores, dtype=torch.float32),
    }


def test_each_mirror_s_candidates_come_back_onto_the_image_and_are_selected_once():
    image = torch.zeros(3, 10, 20)
    image[0, 0, 0] = 1
    as_is = _candidates([[2, 1, 6, 5]], [1], [0.9])
    # The mirror (W = 20) sees the same object at x 14..18, and one more, of class 2, that
    # the image as it is missed: at x 0..4 in the mirror, so x 16..20 on the image.
    mirrored = _candidates([[14, 1, 18, 5], [0, 0, 4, 4]], [1, 2], [0.8, 0.7])
    stub = _StubDetector(as_is, mirrored)
    detections, _ = TestTimeFlips(stub, "horizontal").detect_with_proposals([image], 1000)
    (found,) = detections
    torch.testing.assert_close(found["boxes"], torch.tensor([[2.0, 1, 6, 5], [16, 0, 20, 4]]))
    assert found["labels"].tolist() == [1, 2]
    torch.testing.assert_close(found["scores"], torch.tensor([0.9, 0.7]))
    # The proposal limit (for proposal recall) goes to the unflipped view only.
    assert stub.limits == [1000, None]


def test_a_vertical_mirror_maps_y_back():
    image = torch.zeros(3, 10, 20)
    image[0, 0, 0] = 1
    stub = _StubDetector(_candidates([], [], []), _candidates([[3, 0, 7, 2]], [2], [0.6]))
    (found,) = TestTimeFlips(stub, "vertical")([image])
    torch.testing.assert_close(found["boxes"], torch.tensor([[3.0, 8, 7, 10]]))


def test_unknown_flips_are_refused():
    with pytest.raises(ValueError, match="one of"):
        TestTimeFlips(small_detector(), "diagonal")


def _same_detections(got: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    assert got["labels"].tolist() == expected["labels"].tolist()
    torch.testing.assert_close(got["scores"], expected["scores"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got["boxes"], expected["boxes"], rtol=1e-4, atol=1e-3)


def test_a_model_s_candidates_reselected_are_its_detections():
    model = small_detector()
    images = images_of_sizes([(120, 160), (150, 100)])
    with torch.no_grad():
        expected = model(images)
        candidates, _ = model.candidates_with_proposals(images)
    assert all(
        len(c["scores"]) > len(e["scores"]) > 0 for c, e in zip(candidates, expected, strict=True)
    )
    for found, wanted in zip(candidates, expected, strict=True):
        _same_detections(model.roi_heads.select(found), wanted)


@pytest.mark.parametrize(("flips", "axis"), [("horizontal", -1), ("vertical", -2), ("both", -1)])
def test_mirroring_the_input_mirrors_the_merged_detections(flips, axis):
    """The views of an image's mirror are the image's views, each mirrored: the pooled
    candidates are the same, so the merged detections are the same, mirrored."""
    detector = TestTimeFlips(small_detector(), flips)
    (image,) = images_of_sizes([(120, 160)])
    (found,) = detector([image])
    (found_in_mirror,) = detector([image.flip(axis)])
    assert len(found["scores"]) > 0
    mirrored = found["boxes"].clone()
    low, high = (0, 2) if axis == -1 else (1, 3)
    size = image.shape[axis]
    mirrored[:, low], mirrored[:, high] = (
        size - found["boxes"][:, high],
        size - found["boxes"][:, low],
    )
    _same_detections(found_in_mirror, {**found, "boxes": mirrored})
