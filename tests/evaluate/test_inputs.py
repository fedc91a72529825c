"""The input checks shared by the VOC, COCO and proposal recall evaluators."""

from __future__ import annotations

import pytest
import torch

from faster_rcnn.evaluate.inputs import (
    box_flags,
    check_num_classes,
    check_one_per_image,
    cpu_boxes,
    foreground_class_names,
    per_box,
    read_detections,
    read_ground_truth,
    require_keys,
)

BOX = [0.0, 0.0, 10.0, 10.0]


def test_class_names_with_or_without_background() -> None:
    assert foreground_class_names(3, None) == ["1", "2"]
    assert foreground_class_names(3, ["cat", "dog"]) == ["cat", "dog"]
    assert foreground_class_names(3, ["background", "cat", "dog"]) == ["cat", "dog"]
    with pytest.raises(ValueError, match=r"expected 2 class names \(or 3 with the background"):
        foreground_class_names(3, ["cat"])
    with pytest.raises(ValueError, match="must be >= 2, got 1"):
        check_num_classes(1)


def test_batch_and_keys() -> None:
    with pytest.raises(ValueError, match="got 1 proposal sets for 2 targets; expected one of each"):
        check_one_per_image([{}], [{}, {}], "proposal sets")
    with pytest.raises(ValueError, match="image 4: target has no 'labels'"):
        require_keys({"boxes": torch.zeros(0, 4)}, ("boxes", "labels"), 4, "target")


def test_boxes_empty_of_any_shape_or_n_by_4() -> None:
    assert cpu_boxes(torch.zeros(0), 0, "predicted").shape == (0, 4)
    assert cpu_boxes(torch.zeros(0, 5), 0, "predicted").shape == (0, 4)
    with pytest.raises(ValueError, match=r"image 2: proposal boxes must have shape \(N, 4\)"):
        cpu_boxes(torch.zeros(1, 5), 2, "proposal")


def test_per_box_entries_need_one_value_per_box() -> None:
    assert per_box(torch.ones(3), "scores", 3, 0, "predicted").shape == (3,)
    with pytest.raises(
        ValueError, match=r"image 1: 2 predicted boxes but labels of shape \(2, 1\)"
    ):
        per_box(torch.ones(2, 1), "labels", 2, 1, "predicted")
    # Missing flags are all False; present ones become bool.
    assert torch.equal(box_flags({}, "difficult", 2, 0), torch.tensor([False, False]))
    flags = box_flags({"iscrowd": torch.tensor([0, 1])}, "iscrowd", 2, 0)
    assert torch.equal(flags, torch.tensor([False, True]))
    with pytest.raises(ValueError, match=r"image 0: 2 ground truth boxes but iscrowd of shape"):
        box_flags({"iscrowd": torch.tensor([1])}, "iscrowd", 2, 0)


def test_detections_and_ground_truth_come_back_checked() -> None:
    prediction = {
        "boxes": torch.tensor([BOX, BOX]),
        "labels": torch.tensor([1, 2], dtype=torch.int32),
        "scores": torch.tensor([0.9, 0.1]),
    }
    boxes, labels, scores = read_detections(prediction, 0, num_classes=3)
    assert boxes.shape == (2, 4) and labels.dtype == torch.int64 and scores.shape == (2,)
    with pytest.raises(ValueError, match=r"image 3, box 1: predicted label 3 is outside 1\.\.2"):
        read_detections({**prediction, "labels": torch.tensor([1, 3])}, 3, num_classes=3)
    with pytest.raises(ValueError, match="image 0: 2 predicted boxes but scores of shape"):
        read_detections({**prediction, "scores": torch.ones(3)}, 0, num_classes=3)

    target = {"boxes": torch.tensor([BOX]), "labels": torch.tensor([2])}
    boxes, labels = read_ground_truth(target, 0, num_classes=3)
    assert boxes.shape == (1, 4) and labels.tolist() == [2]
    with pytest.raises(ValueError, match=r"image 5, box 0: ground truth label 0 is outside"):
        read_ground_truth({**target, "labels": torch.tensor([0])}, 5, num_classes=3)


def test_float_labels_are_refused_not_truncated():
    prediction = {
        "boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
        "labels": torch.tensor([1.5]),
        "scores": torch.tensor([0.9]),
    }
    with pytest.raises(ValueError, match="image 0: predicted labels must be integers"):
        read_detections(prediction, 0, num_classes=3)
    target = {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]), "labels": torch.tensor([1.0])}
    with pytest.raises(ValueError, match="image 2: ground truth labels must be integers"):
        read_ground_truth(target, 2, num_classes=3)
