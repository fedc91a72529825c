"""The generated microscope slides: deterministic, valid targets, the classes promised."""

from __future__ import annotations

import pytest
import torch

from faster_rcnn.data import open_dataset
from faster_rcnn.data.dataset import image_size_of
from faster_rcnn.data.slides import CLASS_NAMES, SyntheticSlides
from thread_counts import threads_at_calls


def test_same_seed_same_slides_other_seed_other_slides() -> None:
    a, b, c = SyntheticSlides(2, seed=5), SyntheticSlides(2, seed=5), SyntheticSlides(2, seed=6)
    for i in range(2):
        assert torch.equal(a[i][0], b[i][0])
        assert torch.equal(a[i][1]["boxes"], b[i][1]["boxes"])
    assert not torch.equal(a[0][0], c[0][0])


def test_slides_hold_many_common_objects_and_a_small_rare_class() -> None:
    data = SyntheticSlides(24, seed=0)
    per_class = {label: [] for label in (1, 2, 3)}
    per_image = []
    for i in range(len(data)):
        image, target = data[i]
        assert image.shape == (3, 480, 640) and image.dtype == torch.float32
        assert float(image.min()) >= 0 and float(image.max()) <= 1
        assert torch.equal(image * 255, (image * 255).round())  # 8-bit values
        boxes, labels = target["boxes"], target["labels"]
        assert labels.dtype == torch.int64 and set(labels.tolist()) <= {1, 2, 3}
        assert bool((boxes[:, 2:] > boxes[:, :2]).all())
        assert bool((boxes[:, :2] >= 0).all()) and bool((boxes[:, 2] <= 640).all())
        assert bool((boxes[:, 3] <= 480).all())
        per_image.append(len(boxes))
        for box, label in zip(boxes, labels.tolist(), strict=True):
            per_class[label].append(float((box[2] - box[0]) * (box[3] - box[1])) ** 0.5)
    counts = {label: len(sides) for label, sides in per_class.items()}
    total = sum(counts.values())
    assert sum(per_image) / len(per_image) >= 10  # crowded
    assert 0.03 <= counts[2] / total <= 0.10  # platelets: rare
    assert 0.02 <= counts[3] / total <= 0.10  # leukocytes: rare
    median = {label: torch.tensor(sides).median().item() for label, sides in per_class.items()}
    assert 30 <= median[2] <= 50  # small: 28-50 px before cuts by the border
    assert 70 <= median[1] <= 110 and median[3] >= 130


def test_cells_touch_and_overlap() -> None:
    from faster_rcnn.ops.boxes import box_iou

    overlapping = 0
    data = SyntheticSlides(10, seed=1)
    for i in range(len(data)):
        boxes = data[i][1]["boxes"]
        iou = box_iou(boxes, boxes).fill_diagonal_(0)
        overlapping += int((iou > 0.1).any(dim=1).sum())
    assert overlapping >= 20


def test_slides_open_by_name_with_split_sizes_and_seeds() -> None:
    train, test = open_dataset("slides", "train"), open_dataset("slides:7", "test")
    assert (len(train), len(test)) == (300, 7)
    assert train.class_names == CLASS_NAMES
    assert not torch.equal(train[0][0], test[0][0])
    assert image_size_of(test, 3) == (480, 640)


def test_more_cells_crowd_the_slides_and_leave_the_default_slides_as_they_were() -> None:
    from faster_rcnn.ops.boxes import box_iou

    default, same = SyntheticSlides(6, seed=2), SyntheticSlides(6, seed=2, cells=(10, 24))
    assert torch.equal(default[4][0], same[4][0])
    # Cells with another beyond IoU 0.5, over six slides.
    overlapping = dict.fromkeys(((5, 12), (30, 50)), 0)
    for cells in overlapping:
        data = SyntheticSlides(6, seed=2, cells=cells)
        for i in range(len(data)):
            target = data[i][1]
            boxes = target["boxes"][target["labels"] == 1]
            assert len(boxes) <= cells[1]
            iou = box_iou(boxes, boxes).fill_diagonal_(0)
            overlapping[cells] += int((iou > 0.5).any(dim=1).sum())
    assert overlapping[(30, 50)] > 4 * overlapping[(5, 12)]


def test_a_cell_range_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="fewest <= most"):
        SyntheticSlides(2, cells=(12, 5))


@pytest.mark.parametrize(
    "data", [SyntheticSlides(40, seed=0), SyntheticSlides(10, seed=1, cells=(30, 40))]
)
def test_target_gives_the_boxes_of_the_painted_slide_without_painting_it(data, monkeypatch):
    """target(i) is what the recipe reads: the same boxes and labels as data[i], bit for
    bit, over every slide (with and without leukocytes and platelets), none painted."""
    drawn = [data[i][1] for i in range(len(data))]
    monkeypatch.setattr("faster_rcnn.data.slides._background", _not_painted)
    monkeypatch.setattr("faster_rcnn.data.slides._Canvas._blend", _not_painted)
    for i, target in enumerate(drawn):
        read = data.target(i)
        assert torch.equal(read["boxes"], target["boxes"]), i
        assert torch.equal(read["labels"], target["labels"]), i
    labels = torch.cat([target["labels"] for target in drawn]).tolist()
    assert {1, 2, 3} <= set(labels)
    with pytest.raises(IndexError, match="out of range"):
        data.target(len(data))


def _not_painted(*args: object, **kwargs: object) -> None:
    raise AssertionError("target(i) painted the slide")


def test_slides_are_painted_on_one_thread_and_the_threads_given_back(
    monkeypatch, two_threads
) -> None:
    slides = SyntheticSlides(2, seed=0)
    threads = threads_at_calls(monkeypatch, SyntheticSlides, "_drawn")
    assert torch.equal(slides.target(1)["boxes"], slides[1][1]["boxes"])
    assert threads == [1, 1] and torch.get_num_threads() == 2
