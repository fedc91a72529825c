import itertools
from collections import Counter

import pytest
import torch
from torch import Tensor

from faster_rcnn.data.augment import Augmented, RandomHorizontalFlip
from faster_rcnn.data.dataset import image_name_of, image_size_of, target_of
from faster_rcnn.data.loader import (
    GroupedBatchSampler,
    aspect_ratio_groups,
    collate,
    iterate_batches,
    make_eval_loader,
    make_train_loader,
)
from faster_rcnn.data.synthetic import SyntheticShapes


class _Sized:
    """Constant images of given sizes; item ``i`` has one box and one crowd box."""

    class_names = ("thing",)
    num_classes = 2

    def __init__(self, sizes: list[tuple[int, int]]) -> None:
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        height, width = self.sizes[index]
        target = {
            "boxes": torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3]]),
            "labels": torch.tensor([1, 1]),
            "iscrowd": torch.tensor([False, True]),
            "image_id": index,
        }
        # Pixel value: 1000 * index + column, so flips show and the index can be read back.
        columns = torch.arange(width, dtype=torch.float32).expand(3, height, width)
        return 1000.0 * index + columns, target

    def image_size(self, index: int) -> tuple[int, int]:
        return self.sizes[index]


def test_collate_keeps_lists() -> None:
    a, b = (torch.zeros(3, 4, 5), {"x": 1}), (torch.ones(3, 6, 2), {"x": 2})
    images, targets = collate([a, b])
    assert images[0] is a[0] and images[1] is b[0] and targets == [{"x": 1}, {"x": 2}]


def test_aspect_ratio_groups() -> None:
    data = _Sized([(10, 20), (20, 10), (15, 15), (9, 10)])
    assert aspect_ratio_groups(data) == [1, 0, 0, 1]
    assert aspect_ratio_groups(SyntheticShapes(3, image_size=(20, 30))) == [1, 1, 1]


def test_a_torch_subset_is_grouped_by_its_dataset_s_sizes_without_loading_an_item() -> None:
    """torchvision's tutorial splits its data with ``torch.utils.data.Subset``, which has
    no ``image_size``: every item was loaded once to be grouped."""

    class Unloadable(_Sized):
        def __getitem__(self, index: int) -> tuple[Tensor, dict]:
            raise AssertionError(f"item {index} loaded")

        def target(self, index: int) -> dict:
            return {"image_id": index}

        def image_path(self, index: int) -> str:
            return f"{index}.jpg"

    data = Unloadable([(10, 20), (20, 10), (15, 15), (9, 10)])
    subset = torch.utils.data.Subset(data, [3, 1, 0])
    assert aspect_ratio_groups(subset) == [1, 0, 1]
    assert image_size_of(subset, 1) == (20, 10)
    assert target_of(subset, 0) == {"image_id": 3} and image_name_of(subset, 0) == "3.jpg"
    # random_split of a split: the file is named through both Subsets.
    assert image_name_of(torch.utils.data.Subset(subset, [2, 0]), 1) == "3.jpg"
    assert image_name_of(torch.utils.data.Subset(SyntheticShapes(3), [2, 0]), 1) == "image 1"


@pytest.mark.parametrize("drop_last", [False, True])
def test_grouped_batches_are_homogeneous_and_cover_each_epoch(drop_last: bool) -> None:
    groups = [0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1]  # 4 of group 0, 9 of group 1
    sampler = GroupedBatchSampler(groups, batch_size=3, seed=1, drop_last=drop_last)
    orders = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == (4 if drop_last else 5)
        assert all(len({groups[i] for i in batch}) == 1 for batch in batches)
        seen = Counter(i for batch in batches for i in batch)
        assert max(seen.values()) == 1
        if drop_last:  # one leftover of group 0 (4 = 3 + 1), none of group 1
            assert all(len(b) == 3 for b in batches)
            missing = set(range(13)) - set(seen)
            assert len(missing) == 1 and groups[missing.pop()] == 0
        else:  # the leftover comes last, as a smaller batch
            assert set(seen) == set(range(13)) and len(batches[-1]) == 1
        assert list(sampler) == batches  # the epoch decides
        orders.append(batches)
    assert orders[0] != orders[1]
    other = GroupedBatchSampler(groups, batch_size=3, seed=2, drop_last=drop_last)
    assert list(other) != orders[0]
    with pytest.raises(ValueError, match="batch_size"):
        GroupedBatchSampler(groups, batch_size=0)


def test_train_loader_groups_and_drops_crowd_boxes_eval_loader_keeps_them() -> None:
    sizes = [(8, 12), (12, 8)] * 5
    data = _Sized(sizes)
    batches = list(make_train_loader(data, batch_size=2, seed=0))
    assert sum(len(images) for images, _ in batches) == 10
    for images, targets in batches:
        assert len({img.shape[-1] > img.shape[-2] for img in images}) == 1
        for image, target in zip(images, targets, strict=True):
            assert target["image_id"] == int(image.min()) // 1000
            assert torch.equal(target["boxes"], torch.tensor([[0.0, 0, 2, 2]]))
            assert torch.equal(target["iscrowd"], torch.tensor([False]))
    ungrouped = make_train_loader(data, batch_size=2, seed=0, group_by_aspect_ratio=False)
    assert any(
        len({img.shape[-1] > img.shape[-2] for img in images}) == 2 for images, _ in ungrouped
    )
    evaluated = list(make_eval_loader(data, batch_size=3))
    assert [len(images) for images, _ in evaluated] == [3, 3, 3, 1]
    assert [t["image_id"] for _, targets in evaluated for t in targets] == list(range(10))
    assert all(len(t["boxes"]) == 2 for _, targets in evaluated for t in targets)


def test_train_loader_drops_crowd_boxes_flagged_as_integers() -> None:
    # torchvision's fine-tuning tutorial gives iscrowd as int64 0/1: a mask, not indices
    # (~ of int64 [0, 1, 0] is [-1, -2, -1], which picked boxes C, B, C).
    target = {
        "boxes": torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3], [4, 4, 8, 8]]),
        "labels": torch.tensor([1, 2, 3]),
        "area": torch.tensor([4.0, 4.0, 16.0]),
        "iscrowd": torch.tensor([0, 1, 0]),
    }
    data = [(torch.zeros(3, 8, 8), target)]
    [(_, [trained])] = list(make_train_loader(data, batch_size=1, group_by_aspect_ratio=False))
    assert torch.equal(trained["boxes"], torch.tensor([[0.0, 0, 2, 2], [4, 4, 8, 8]]))
    assert trained["labels"].tolist() == [1, 3] and trained["area"].tolist() == [4.0, 16.0]
    assert trained["iscrowd"].tolist() == [0, 0]


def _summary(batches) -> list[list[tuple]]:
    """Per batch, per image: a hash of its pixels and its boxes."""
    return [
        [(float(img.sum()), t["boxes"].tolist()) for img, t in zip(*batch, strict=True)]
        for batch in batches
    ]


def test_workers_give_the_same_batches_and_augmentations() -> None:
    data = Augmented(_Sized([(4, 6)] * 10), [RandomHorizontalFlip()], seed=3)
    single = _summary(make_train_loader(data, batch_size=3, num_workers=0, seed=4, epoch=2))
    workers = _summary(make_train_loader(data, batch_size=3, num_workers=2, seed=4, epoch=2))
    assert single == workers and len(single) == 4
    assert single != _summary(make_train_loader(data, batch_size=3, seed=4, epoch=3))
    # The items are those of epoch 2 of the augmented dataset.
    reference = Augmented(_Sized([(4, 6)] * 10), [RandomHorizontalFlip()], seed=3)
    reference.set_epoch(2)
    for images, targets in make_train_loader(data, batch_size=3, num_workers=2, seed=4, epoch=2):
        for image, target in zip(images, targets, strict=True):
            assert torch.equal(image, reference[target["image_id"]][0])


def test_iterate_batches_runs_through_epochs_and_resumes() -> None:
    data = Augmented(SyntheticShapes(7, image_size=(16, 16), seed=0), [RandomHorizontalFlip()], 0)
    epochs = [_summary(make_train_loader(data, batch_size=3, seed=1, epoch=e)) for e in range(3)]
    stream = _summary(itertools.islice(iterate_batches(data, batch_size=3, seed=1), 9))
    assert stream == epochs[0] + epochs[1] + epochs[2]  # 3 batches (3, 3, 1) per epoch
    # Workers see each new epoch too.
    workers = iterate_batches(data, batch_size=3, seed=1, num_workers=2)
    assert _summary(itertools.islice(workers, 9)) == stream
    resumed = _summary(itertools.islice(iterate_batches(data, 3, seed=1, start_batch=4), 5))
    assert resumed == stream[4:]
    with pytest.raises(ValueError, match="no training batch"):
        next(iterate_batches(data, batch_size=8, drop_last=True))
