import math

import pytest
import torch

from faster_rcnn.validation import validate_images, validate_targets


def target(boxes, labels=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if labels is None:
        labels = [1] * len(boxes)
    return {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.int64)}


def test_valid_targets_including_an_empty_image_pass():
    validate_targets([target([[0, 0, 10, 10]]), target([])], num_images=2, num_classes=3)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (target([[0, 0, 10, 10], [5, 5, 5, 9]]), r"image 1, box 1: .* has no area"),
        (target([[0, 0, 10, 10], [5, 9, 8, 2]]), r"image 1, box 1: .* has no area"),
        (target([[0, 0, math.nan, 10]]), r"image 1, box 0: non-finite"),
        (target([[0, 0, math.inf, 10]]), r"image 1, box 0: non-finite"),
        (target([[0, 0, 10, 10]], [0]), r"image 1, box 0: label 0 is outside 1..2"),
        (target([[0, 0, 10, 10]], [3]), r"image 1, box 0: label 3 is outside 1..2"),
        ({"boxes": torch.zeros(2, 5), "labels": torch.ones(2, dtype=torch.int64)}, r"\(N, 4\)"),
        ({"boxes": torch.zeros(1, 4, dtype=torch.int64), "labels": torch.ones(1)}, "floating"),
        ({"boxes": torch.tensor([[0.0, 0, 1, 1]]), "labels": torch.ones(1)}, "int64"),
        ({"boxes": torch.tensor([[0.0, 0, 1, 1]]), "labels": torch.ones(2).long()}, r"\(1,\)"),
        ({"boxes": torch.tensor([[0.0, 0, 1, 1]])}, "'boxes' and 'labels'"),
    ],
)
def test_invalid_targets_name_the_image_and_box(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_targets([target([[0, 0, 10, 10]]), bad], num_images=2, num_classes=3)


def test_target_count_must_match_images():
    with pytest.raises(ValueError, match="list of 2 target dicts, got 1"):
        validate_targets([target([])], num_images=2, num_classes=3)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([], "non-empty"),
        ([torch.zeros(1, 4, 4)], r"image 0: expected shape \(3, H, W\)"),
        ([torch.zeros(3, 4, 4), torch.zeros(3, 0, 4)], r"image 1: expected shape"),
        ([torch.zeros(3, 4, 4, dtype=torch.uint8)], "image 0: expected a floating point"),
    ],
)
def test_invalid_images(images, message):
    with pytest.raises(ValueError, match=message):
        validate_images(images)
